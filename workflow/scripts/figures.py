"""Snakemake adapter: landscape panel and box-counting diagnostic of one experiment."""

import json
import logging
import sys

from trainability import dimension, figures, io

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

panel = snakemake.params.panel
scores, _ = io.read_h5(snakemake.input.scores, ["convergence"])
figures.save_landscape(
    scores["convergence"],
    panel["window"][0],
    panel["window"][1],
    panel["phase_space"],
    panel["title"],
    snakemake.output.landscape_pdf,
    snakemake.output.landscape_png,
)
with open(snakemake.input.dimension) as fh:
    estimate = dimension.DimensionEstimate.from_dict(json.load(fh))
figures.save_boxcount_plot(estimate, snakemake.output.boxcount_pdf, snakemake.output.boxcount_png)
