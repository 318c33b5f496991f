"""Snakemake adapter: our fractal dimensions (box count, uncertainty exponent, line) beside the paper's."""

import json
import logging
import sys

from trainability.figures import tables

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")


def read(path):
    with open(path) as fh:
        return json.load(fh)


# {experiment: result file} for the experiments that have each estimator.
uncertainty = {name: read(path) for name, path in snakemake.params.uncertainty.items()}
lines = {name: read(path) for name, path in snakemake.params.lines.items()}
rows = []
for panel, dim_path in zip(snakemake.params.panels, snakemake.input.dimensions):
    dim = read(dim_path)
    name = panel["experiment"]
    ue = uncertainty.get(name, {})
    interval = (ue.get("dimension_low"), ue.get("dimension_high"))
    rows.append(
        dict(
            experiment=name,
            title=panel["title"],
            dimension=dim["median"],
            q25=dim["q25"],
            q75=dim["q75"],
            dimension_reason=dim.get("reason"),
            uncertainty=ue.get("dimension"),
            uncertainty_low=interval[0],
            uncertainty_high=interval[1],
            line=lines.get(name, {}).get("dimension"),
            paper_dimension=panel["paper_dimension"],
            resolution=panel["resolution"],
            frames=panel["frames"],
            decades=panel["decades"],
        )
    )
tables.write_dimension_table(rows, snakemake.output.csv, snakemake.output.md)
