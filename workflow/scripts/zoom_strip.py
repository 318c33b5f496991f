"""Snakemake adapter: a strip of evenly spread frames of a zoom sequence."""

import logging
import sys

from trainability import zoom_figures

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

paths = list(snakemake.input.frames)
chosen = zoom_figures.strip_frames(len(paths))
logging.info("strip of frames %s out of %d", chosen, len(paths))
images = {k: zoom_figures.read_frame_image(paths[k]) for k in chosen}
zoom_figures.save_zoom_strip(
    images, snakemake.params.depths, snakemake.params.title, snakemake.output.pdf, snakemake.output.png
)
