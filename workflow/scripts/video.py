"""Snakemake adapter: MP4 zoom video through the frames of a zoom sequence, on one colour scale."""

import logging
import sys
from functools import partial

from trainability.figures import video, zoom
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

measure = snakemake.params.measure


def values(path):
    return files.read_h5(path, [measure])[0][measure]


# Every keyframe ranked among the whole sequence's values: one colour means one value in
# every frame, so a deeper keyframe meets the picture around it (frames are read twice
# rather than held: 42 frames of 4096**2 do not fit in memory).
reference = zoom.sequence_reference(values(path) for path in snakemake.input.scores)


def keyframe(path):
    return zoom.frame_rgb(values(path), reference)


keyframes = [partial(keyframe, path) for path in snakemake.input.scores]
info = video.write_zoom_video(keyframes, float(snakemake.params.factor), snakemake.output.video)
logging.info("wrote %s: %s", snakemake.output.video, info)
