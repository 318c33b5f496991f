"""Snakemake adapter: merge a frame's shard files into grid.h5 with axes and provenance."""

import logging
import sys

from trainability import config as tconfig
from trainability.contract import grid, statistics
from trainability.results import files, integrity, shard_arithmetic

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

params = snakemake.params
resolution = params.training["resolution"]
stats, shard_attrs = files.merge_shards(
    snakemake.input.shards, statistics.STAT_FIELDS, resolution, params.shard_size
)
# Read from the config, not a param: allowing it must not rerun (and retrain) merged frames.
identities = shard_arithmetic.by_identity(snakemake.input.shards, [a.get("arithmetic") for a in shard_attrs])
problem = shard_arithmetic.mixing_problem(identities, tconfig.allow_mixed_arithmetic(snakemake.config))
if problem:
    raise SystemExit(f"merge of {snakemake.output[0]} refused: {problem}")
window = integrity.frame_window(params.window, snakemake.input.get("centre"), snakemake.wildcards.experiment)
(x_lo, x_hi), (y_lo, y_hi) = window
attrs = files.grid_attributes(
    snakemake.wildcards.experiment,
    int(snakemake.wildcards.frame),
    window,
    params.training,
    params.shard_size,
    params.results_version,
    shard_attrs,
)
files.write_h5(
    snakemake.output[0],
    stats,
    attrs=attrs,
    scales={
        "x": ("log10 of the x hyperparameter at each column", grid.axis_log10(x_lo, x_hi, resolution)),
        "y": ("log10 of the y hyperparameter at each row", grid.axis_log10(y_lo, y_hi, resolution)),
    },
)
if len(identities) > 1:
    logging.warning("shards of this frame mix arithmetics (allowed by the config): %s", sorted(identities))
logging.info(
    "merged %d shards into %s (devices: %s)",
    len(snakemake.input.shards),
    snakemake.output[0],
    attrs["devices"],
)
