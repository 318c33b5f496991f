"""Snakemake adapter: the diagnostic figure of an estimator's result (uncertainty or line)."""

import json
import logging
import sys

from trainability.boundary import line_dimension, uncertainty
from trainability.figures import line as line_figure
from trainability.figures import style
from trainability.figures import uncertainty as uncertainty_figure

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

with open(snakemake.input[0]) as fh:
    data = json.load(fh)
title, pdf, png = snakemake.params.title, snakemake.output.pdf, snakemake.output.png
if snakemake.wildcards.estimator == "uncertainty":
    figure = uncertainty_figure.uncertainty_figure(uncertainty.UncertaintyResult.from_dict(data), title)
else:
    figure = line_figure.line_dimension_figure(line_dimension.LineDimension.from_dict(data), title)
style.save_figure(figure, pdf, png)
