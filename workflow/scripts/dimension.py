"""Snakemake adapter: box-counting dimension of the boundary over all frames."""

import logging
import sys

from trainability import dimension, io

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

edges = []
for path in snakemake.input:
    data, _ = io.read_h5(path, [snakemake.params.measure])
    edges.append(dimension.edge_map(data[snakemake.params.measure]))
estimate = dimension.fractal_dimension(edges)
io.write_json(
    snakemake.output[0],
    {"experiment": snakemake.wildcards.experiment, "measure": snakemake.params.measure, **estimate.to_dict()},
)
logging.info(
    "fractal dimension %.3f (q25 %.3f, q75 %.3f) from %d frames",
    estimate.median,
    estimate.q25,
    estimate.q75,
    len(edges),
)
