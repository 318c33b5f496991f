"""Snakemake adapter: each frame's box-counting slopes against its depth of zoom."""

import json
import logging
import sys

from trainability.boundary import box_counting
from trainability.figures import style, zoom

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

with open(snakemake.input.dimension) as fh:
    data = json.load(fh)
estimate = box_counting.DimensionEstimate.from_dict(data)
summaries = box_counting.frame_slope_summary(estimate)
logging.info("%d frames, %d with slopes", len(summaries), sum(s.n_slopes > 0 for s in summaries))
figure = zoom.dimension_depth_figure(
    data["decades"],
    summaries,
    estimate.median,
    snakemake.params.paper_dimension,
    snakemake.params.title,
    edges=[bc.pixels for bc in estimate.box_counts],
    resolution=snakemake.params.resolution,
    float64_limit=snakemake.params.float64_limit,
)
style.save_figure(figure, snakemake.output.pdf, snakemake.output.png)
