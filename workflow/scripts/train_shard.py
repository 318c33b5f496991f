"""Snakemake adapter: train one shard of one frame and write its HDF5 file."""

import logging
import os
import sys
import time

import torch

from trainability import config, grid, io, problem, training

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
device = training.resolve_device(os.environ.get("TRAINABILITY_DEVICE", "auto"))
log.info("shard %d: pixels %d..%d of %d, %d steps, device %s", shard, start, stop - 1,
         resolution**2, settings["training"]["steps"], device)

# --- Test-only fault injection (tests/test_slurm.py, tests/test_faults.py) ---
# Comma-separated "experiment:frame:shard" entries; unset (always, outside the
# tests) means no effect. TRAINABILITY_TEST_FAIL_SHARDS makes these shards fail;
# TRAINABILITY_TEST_SLOW_SHARDS="experiment:frame:shard=seconds" makes them
# sleep first (time to scancel or interrupt them). Never changes results.
_me = f"{snakemake.wildcards.experiment}:{snakemake.wildcards.frame}:{shard}"
for _entry in filter(None, os.environ.get("TRAINABILITY_TEST_SLOW_SHARDS", "").split(",")):
    _who, _, _seconds = _entry.partition("=")
    if _who.strip() == _me:
        log.info("test fault injection: sleeping %s s (TRAINABILITY_TEST_SLOW_SHARDS)", _seconds)
        time.sleep(float(_seconds))
if _me in {e.strip() for e in os.environ.get("TRAINABILITY_TEST_FAIL_SHARDS", "").split(",")}:
    raise RuntimeError(f"test fault injection: shard {_me} fails (TRAINABILITY_TEST_FAIL_SHARDS)")

shared = problem.build_problem(settings["model"], settings["data"], settings["training"])
kernel = params.kernel
if kernel == "auto":
    kernel = training.selected_kernel(device, settings["training"]["dtype"], shared,
                                      settings["model"]["nonlinearity"])
log.info("kernel: %s (config: %s)", kernel, params.kernel)
x, y = grid.pixel_coordinates(params.window, resolution, start, stop)
learning_rates, offsets = training.per_layer_learning_rates(
    x, y, settings["phase_space"]["kind"], len(shared.weights))

began = time.monotonic()
last_report = [began]


def progress(done, total):
    now = time.monotonic()
    if now - last_report[0] >= 10 or done == total:
        last_report[0] = now
        rate = done / max(now - began, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("nan")
        log.info("%5.1f%%  %.3g pixel-steps/s  eta %.0f s", 100 * done / total, rate, eta)


stats = training.train_pixels(
    shared, learning_rates, offsets,
    nonlinearity=settings["model"]["nonlinearity"],
    steps=settings["training"]["steps"],
    offset_mode=settings["phase_space"]["offset_mode"],
    dtype=settings["training"]["dtype"],
    device=device, first_pixel=start, progress=progress, kernel=kernel,
)
elapsed = time.monotonic() - began
log.info("trained %d pixels in %.1f s", stop - start, elapsed)

io.write_h5(
    snakemake.output[0], stats,
    attrs={
        "experiment": snakemake.wildcards.experiment,
        "frame": int(snakemake.wildcards.frame),
        "shard": shard,
        "first_pixel": start,
        "n_pixels": stop - start,
        "window": params.window,
        "training": settings,
        "device": io.device_description(device),
        "kernel": kernel,
        "versions": io.software_versions(),
    },
)
