"""Snakemake adapter: find the automatic centre of a zoom sequence (trainability.boundary.centre)."""

import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from trainability import training
from trainability.boundary import centre, precise_centre
from trainability.contract import grid
from trainability.kernels import dispatch
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("find_centre")

made_with = snakemake.params.made_with
search = made_with["search"]
torch.set_num_threads(snakemake.threads)
device = dispatch.resolve_device(os.environ.get("TRAINABILITY_DEVICE", "auto"))
# Double-double sequences reach past float64's coordinates: the search in precise stages.
precise = search["dtype"] == "float64x2"
if precise:
    converged, backend = training.converged_about_function(made_with["training"], device, made_with["kernel"])
else:
    converged, backend = training.converged_function(made_with["training"], device, made_with["kernel"])
kernel = training.kernel_name(backend)
log.info(
    "descending %d levels with %d^2 pilot frames (factor %g), kernel %s on %s",
    search["depth"],
    search["pilot_resolution"],
    search["factor"],
    kernel,
    device,
)
began = time.monotonic()
try:
    found = (precise_centre.find_centre_precise if precise else centre.find_centre)(
        converged,
        search["window0"],
        search["factor"],
        search["depth"],
        search["pilot_resolution"],
        search["tolerance"],
    )
except centre.NoBoundary as err:
    raise SystemExit(f"experiment {snakemake.wildcards.experiment}: {err}") from None
elapsed = time.monotonic() - began
log.info("%d entry candidates on the survey's boundary", found.candidates)
for level in found.levels:
    log.info(
        "level %2d: centre %s, %d edge pixels, roughness %.2f",
        level.frame,
        level.centre,
        level.edges,
        level.roughness,
    )
frame_pixels = search["resolution"] ** 2 * search["depth"]
log.info(
    "centre %r after %d pilot pixels in %.1f s (%.2f%% of the pixels of %d frames)",
    found.centre,
    found.pixels_trained,
    elapsed,
    100 * found.pixels_trained / frame_pixels,
    search["depth"],
)

# Every frame's pixels must stay distinct about the centre actually found.
for frame in range(search["depth"]):
    window_of = grid.concentric_window_precise if precise else grid.concentric_window
    window = window_of(search["window0"], search["factor"], frame, found.centre)
    for (lo, hi), axis in zip(window, "xy"):
        if not grid.axis_resolves_pixels(lo, hi, search["resolution"], search["dtype"]):
            raise SystemExit(f"frame {frame}: axis {axis} does not resolve {search['resolution']} pixels")

# A centre that differs from the last one found for this experiment moves every frame.
history = Path(snakemake.params.history)
records, bad_lines = files.read_json_lines(history)
if bad_lines:
    log.warning("%s: lines %s are not JSON; skipped (the history is a log only)", history, bad_lines)
centres = [r["centre"] for r in records if isinstance(r, dict) and isinstance(r.get("centre"), list)]
previous = centres[-1] if centres else None
if previous is not None and previous != list(found.centre):
    log.warning(
        "the centre moved from %r: every frame of this sequence is recomputed about the new one", previous
    )
history.parent.mkdir(parents=True, exist_ok=True)
with open(history, "a") as fh:
    fh.write(json.dumps({"centre": list(found.centre), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")

files.write_json(
    snakemake.output[0],
    {
        "experiment": snakemake.wildcards.experiment,
        **found.to_dict(),
        "search": search,
        "kernel": kernel,
        "arithmetic": training.arithmetic_identity(backend, device, made_with["training"]),
        # What the centre depends on: checked against the config when the workflow starts.
        "made_with": made_with,
        "device": dispatch.describe_device(device),
        "seconds": elapsed,
        "versions": files.software_versions(),
    },
)
