"""Snakemake adapter: each frame's box-counting slopes against its depth of zoom."""

import json
import logging
import sys

from trainability import dimension, zoom_figures

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

with open(snakemake.input.dimension) as fh:
    data = json.load(fh)
estimate = dimension.DimensionEstimate.from_dict(data)
summaries = dimension.frame_slope_summary(estimate)
logging.info("%d frames, %d with slopes", len(summaries), sum(s.n_slopes > 0 for s in summaries))
zoom_figures.save_dimension_depth(
    data["decades"],
    summaries,
    estimate.median,
    snakemake.params.paper_dimension,
    snakemake.params.title,
    snakemake.output.pdf,
    snakemake.output.png,
    edges=[bc.pixels for bc in estimate.box_counts],
    resolution=snakemake.params.resolution,
)
