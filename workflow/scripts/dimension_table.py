"""Snakemake adapter: our fractal dimensions beside the paper's (CSV and Markdown)."""

import json
import logging
import sys

from trainability import tables

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

rows = []
for panel, dim_path in zip(snakemake.params.panels, snakemake.input.dimensions):
    with open(dim_path) as fh:
        dim = json.load(fh)
    rows.append(
        dict(
            experiment=panel["experiment"],
            title=panel["title"],
            dimension=dim["median"],
            q25=dim["q25"],
            q75=dim["q75"],
            paper_dimension=panel["paper_dimension"],
            resolution=panel["resolution"],
            frames=panel["frames"],
            decades=panel["decades"],
        )
    )
tables.write_dimension_table(rows, snakemake.output.csv, snakemake.output.md)
