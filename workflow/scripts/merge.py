"""Snakemake adapter: merge a frame's shard files into grid.h5 with axes and provenance."""

import logging
import os
import sys

from trainability import grid, io, statistics

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

params = snakemake.params
resolution = params.training["resolution"]
stats, shard_attrs = io.merge_shards(
    snakemake.input.shards, statistics.STAT_FIELDS, resolution, params.shard_size
)
centre = io.read_json(snakemake.input.centre)["centre"] if "centre" in snakemake.input.keys() else None
window = grid.resolve_window_spec(params.window, centre)
(x_lo, x_hi), (y_lo, y_hi) = window
devices = sorted(
    {a["device"]["device"] + " " + a["device"].get("gpu", a["device"]["processor"]) for a in shard_attrs}
)
io.write_h5(
    snakemake.output[0],
    stats,
    attrs={
        "experiment": snakemake.wildcards.experiment,
        "frame": int(snakemake.wildcards.frame),
        "window_log10": window,
        "resolution": resolution,
        "shard_size": params.shard_size,
        "n_shards": len(snakemake.input.shards),
        "training": params.training,
        "devices": devices,
        # Kernels agree to rounding only: a frame mixing them is flagged here.
        "kernels": sorted({a.get("kernel", "unknown") for a in shard_attrs}),
        "versions": io.software_versions(),
        "slurm_job_ids": sorted({os.environ.get("SLURM_JOB_ID", "")} - {""}),
    },
    scales={
        "x": ("log10 of the x hyperparameter at each column", grid.axis_log10(x_lo, x_hi, resolution)),
        "y": ("log10 of the y hyperparameter at each row", grid.axis_log10(y_lo, y_hi, resolution)),
    },
)
kernels = {a.get("kernel", "unknown") for a in shard_attrs}
if len(kernels) > 1:
    logging.warning(
        "shards of this frame come from different kernels %s: they agree to rounding, not bit for bit",
        sorted(kernels),
    )
logging.info(
    "merged %d shards into %s (devices: %s)", len(snakemake.input.shards), snakemake.output[0], devices
)
