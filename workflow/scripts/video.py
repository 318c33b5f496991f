"""Snakemake adapter: MP4 zoom video through the keyframes of a zoom sequence."""

import logging
import sys

from trainability import video

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

info = video.write_zoom_video(
    list(snakemake.input.frames), float(snakemake.params.factor), snakemake.output.video
)
logging.info("wrote %s: %s", snakemake.output.video, info)
