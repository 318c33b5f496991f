"""Snakemake adapter: train one shard of one frame and write its HDF5 file."""

import logging
import os
import sys
import time

import torch

from trainability import training
from trainability.contract import grid
from trainability.kernels import dispatch
from trainability.ops import faults
from trainability.results import files, integrity, reuse

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
device = dispatch.resolve_device(os.environ.get("TRAINABILITY_DEVICE", "auto"))
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

shared = training.shared_problem(settings)
# Chosen once, here: an explicit kernel that cannot run here stops the job, naming the reason.
backend = training.experiment_backend(shared, settings, device, params.kernel)
kernel = training.kernel_name(backend)
log.info("kernel: %s (config: %s)", kernel, params.kernel)
# An automatic centre comes from its file (checked); a given window is used as it is.
window = integrity.frame_window(params.window, snakemake.input.get("centre"), snakemake.wildcards.experiment)
arithmetic = training.arithmetic_identity(backend, device, settings)
began = time.monotonic()
last_report = [began]


def progress(done, total):
    now = time.monotonic()
    if now - last_report[0] >= 10 or done == total:
        last_report[0] = now
        rate = done / max(now - began, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("nan")
        log.info("%5.1f%%  %.3g pixel-steps/s  eta %.0f s", 100 * done / total, rate, eta)


stats, source = reuse.finished_pixels(
    params.grid,
    shard=shard,
    start=start,
    stop=stop,
    training=settings,
    window=window,
    shard_size=params.shard_size,
    results_version=params.results_version,
    arithmetic=arithmetic,
)
if stats is not None:
    log.info("copied from %s, made with exactly this job's inputs and arithmetic", params.grid)
else:
    log.info("training: %s", source)
    points = grid.pixel_points(window, resolution, start, stop, settings["training"]["dtype"])
    stats = training.train_points(
        shared, settings, **points, device=device, backend=backend, first_pixel=start, progress=progress
    )
    log.info("trained %d pixels in %.1f s", stop - start, time.monotonic() - began)
    source = {"device": dispatch.describe_device(device), "arithmetic": arithmetic}

wildcards = snakemake.wildcards
attrs = files.shard_attributes(
    wildcards.experiment, int(wildcards.frame), shard, (start, stop), window, settings, kernel, source
)
files.write_h5(snakemake.output[0], stats, attrs=attrs)
