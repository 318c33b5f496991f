"""Snakemake adapter: landscape panel and box-counting diagnostic of one experiment."""

import json
import logging
import sys

from trainability.boundary import box_counting
from trainability.figures import landscapes, style
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

panel = snakemake.params.panel
measure = panel["measure"]  # the label measure of its model kind
scores, attrs = files.read_h5(snakemake.input.scores, [measure])
# The window as trained (an automatic centre is known only from the data).
window = attrs["window_log10"]
style.save_figure(
    landscapes.landscape_figure(scores[measure], window[0], window[1], panel["phase_space"], panel["title"]),
    snakemake.output.landscape_pdf,
    snakemake.output.landscape_png,
)
with open(snakemake.input.dimension) as fh:
    estimate = box_counting.DimensionEstimate.from_dict(json.load(fh))
style.save_figure(
    landscapes.boxcount_figure(estimate), snakemake.output.boxcount_pdf, snakemake.output.boxcount_png
)
