"""Snakemake adapter: the paper-style multi-panel figure."""

import json
import logging
import sys

from trainability.figures import landscapes, style
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

panels = []
for panel, scores_path, dim_path in zip(
    snakemake.params.panels, snakemake.input.scores, snakemake.input.dimensions
):
    measure = panel["measure"]  # the label measure of its model kind
    scores, attrs = files.read_h5(scores_path, [measure])
    with open(dim_path) as fh:
        dim = json.load(fh)
    panels.append(
        dict(
            values=scores[measure],
            x_bounds=attrs["window_log10"][0],
            y_bounds=attrs["window_log10"][1],
            phase_space=panel["phase_space"],
            title=panel["title"],
            dimension=dim["median"],
        )
    )
style.save_figure(landscapes.six_panel_figure(panels), snakemake.output.pdf, snakemake.output.png)
