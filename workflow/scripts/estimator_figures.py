"""Snakemake adapter: the diagnostic figure of an estimator's result (uncertainty or line)."""

import json
import logging
import sys

from trainability import line_dimension, line_figures, uncertainty, uncertainty_figures

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

with open(snakemake.input[0]) as fh:
    data = json.load(fh)
title, pdf, png = snakemake.params.title, snakemake.output.pdf, snakemake.output.png
if snakemake.wildcards.estimator == "uncertainty":
    uncertainty_figures.plot_uncertainty(uncertainty.UncertaintyResult.from_dict(data), title, pdf, png)
else:
    line_figures.plot_line_dimension(line_dimension.LineDimension.from_dict(data), title, pdf, png)
