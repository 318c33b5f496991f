"""Snakemake adapter: a strip of evenly spread frames of a zoom sequence."""

import logging
import sys

from trainability.figures import style, zoom

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

paths = list(snakemake.input.frames)
chosen = zoom.strip_frames(len(paths))
logging.info("strip of frames %s out of %d", chosen, len(paths))
images = {k: zoom.read_frame_image(paths[k]) for k in chosen}
style.save_figure(
    zoom.zoom_strip_figure(images, snakemake.params.depths, snakemake.params.title),
    snakemake.output.pdf,
    snakemake.output.png,
)
