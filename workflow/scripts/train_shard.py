"""Snakemake adapter: train one shard of one frame and write its HDF5 file."""

import logging
import os
import sys
import time

import torch

from trainability import faults, grid, io, kernels, problem

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("train_shard")

params = snakemake.params
settings = params.training
resolution = settings["resolution"]
shard = int(snakemake.wildcards.shard)
start, stop = grid.shard_pixels(shard, resolution, params.shard_size)

torch.set_num_threads(snakemake.threads)
# A runtime choice, not a rerun trigger: auto = CUDA when visible, else CPU.
device = kernels.resolve_device(os.environ.get("TRAINABILITY_DEVICE", "auto"))
log.info(
    "shard %d: pixels %d..%d of %d, %d steps, device %s",
    shard,
    start,
    stop - 1,
    resolution**2,
    settings["training"]["steps"],
    device,
)

# Test-only delays and failures; nothing unless the tests set their variables.
faults.inject(snakemake.wildcards.experiment, snakemake.wildcards.frame, shard)

shared = problem.build_problem(settings["model"], settings["data"], settings["training"])
# An explicit kernel that cannot run here stops the job, naming the reason.
kernel = kernels.select_kernel(shared, settings["training"]["dtype"], device, params.kernel)
log.info("kernel: %s (config: %s)", kernel, params.kernel)
x, y = grid.pixel_coordinates(params.window, resolution, start, stop)
learning_rates, offsets = problem.per_layer_learning_rates(
    x, y, settings["phase_space"]["kind"], len(shared.weights)
)

began = time.monotonic()
last_report = [began]


def progress(done, total):
    now = time.monotonic()
    if now - last_report[0] >= 10 or done == total:
        last_report[0] = now
        rate = done / max(now - began, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("nan")
        log.info("%5.1f%%  %.3g pixel-steps/s  eta %.0f s", 100 * done / total, rate, eta)


stats = kernels.train_pixels(
    shared,
    learning_rates,
    offsets,
    nonlinearity=settings["model"]["nonlinearity"],
    steps=settings["training"]["steps"],
    offset_mode=settings["phase_space"]["offset_mode"],
    dtype=settings["training"]["dtype"],
    device=device,
    first_pixel=start,
    progress=progress,
    kernel=kernel,
)
elapsed = time.monotonic() - began
log.info("trained %d pixels in %.1f s", stop - start, elapsed)

io.write_h5(
    snakemake.output[0],
    stats,
    attrs={
        "experiment": snakemake.wildcards.experiment,
        "frame": int(snakemake.wildcards.frame),
        "shard": shard,
        "first_pixel": start,
        "n_pixels": stop - start,
        "window": params.window,
        "training": settings,
        "device": kernels.describe_device(device),
        "kernel": kernel,
        "versions": io.software_versions(),
    },
)
