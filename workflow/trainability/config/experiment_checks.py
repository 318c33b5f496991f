"""Checks of a resolved experiment that the JSON schema cannot express.

Bounds ordered, finite and within the dtype's range once raised to 10**x;
frame 0 and every zoom frame fine enough to resolve neighbouring pixels
(trainability.contract.grid); a given centre inside the window; init and minibatch
files readable and consistent with the model; fields that contradict each
other. Every problem names the experiment's field (``where``).
"""

from __future__ import annotations

import math
from pathlib import Path

from trainability.boundary import box_counting
from trainability.config.extension_checks import extension_problems
from trainability.contract import grid, numerics, problem


def bounds_problems(where: str, exp: dict) -> list[str]:
    """Window bounds that are not finite and ordered, or whose values 10**x overflow the dtype."""
    problems = []
    dtype = exp["training"]["dtype"]
    top = math.log10(numerics.MAX_VALUE[dtype])
    for axis in ("x", "y"):
        lo, hi = exp["phase_space"][axis]
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            problems.append(
                f"{where}.phase_space.{axis}: bounds must be finite with min < max, got {[lo, hi]}"
            )
        elif max(abs(lo), abs(hi)) >= top:
            problems.append(
                f"{where}.phase_space.{axis}: 10**{max(abs(lo), abs(hi)):g} is outside the range of {dtype}; "
                f"allowed: bounds (log10 units) between {-top:.2f} and {top:.2f}"
            )
    return problems


def deepest_frames(exp: dict) -> int:
    """How many frames of exp's sequence the dtype resolves at its resolution (0: not frame 0)."""
    if bounds_problems("", exp):
        return 0  # semantic_problems names them; nothing here may compute 10**x
    ps, zoom = exp["phase_space"], exp["zoom"]
    return grid.max_frames(
        (ps["x"], ps["y"]),
        zoom["factor"],
        zoom["centre"],
        exp["grid"]["resolution"],
        exp["training"]["dtype"],
    )


def shard_limit_problems(where: str, grid_config: dict, limits: dict) -> list[str]:
    """A frame split into more shards, or shards of more pixels, than ``limits`` allow."""
    res, size = grid_config["resolution"], grid_config["shard_size"]
    most_shards, most_pixels = limits["max_shards_per_frame"], limits["max_pixels_per_shard"]
    pixels = res * res
    shards = grid.shard_count(res, size)
    smallest = -(-pixels // most_shards)  # the smallest shard_size within max_shards_per_frame
    if smallest > most_pixels:
        return [
            f"{where}.grid.resolution: {res}^2 = {pixels} pixels do not fit in "
            f"limits.max_shards_per_frame = {most_shards} shards of at most "
            f"limits.max_pixels_per_shard = {most_pixels} pixels; allowed: a resolution up to "
            f"{math.isqrt(most_shards * most_pixels)}, or raise those limits in the config"
        ]
    if shards > most_shards:
        return [
            f"{where}.grid.shard_size: {size} makes {shards} shards per frame "
            f"({res}^2 pixels), more than limits.max_shards_per_frame = {most_shards}; allowed: "
            f"shard_size from {smallest} to {most_pixels}, or raise limits.max_shards_per_frame"
        ]
    if min(size, pixels) > most_pixels:
        return [
            f"{where}.grid.shard_size: {size} pixels per shard are more than "
            f"limits.max_pixels_per_shard = {most_pixels}; allowed: shard_size from {smallest} to "
            f"{most_pixels}, or raise limits.max_pixels_per_shard"
        ]
    return []


# What resolves deeper than each dtype, for the message of a sequence too deep for it.
DEEPER = {
    "float32": " (float64 resolves deeper)",
    "float64": " (float64x2, double-double, resolves about twice as deep)",
    "float64x2": "",
}


def zoom_problems(where: str, exp: dict) -> list[str]:
    """A zoom sequence's centre, factor, frames and pilot frames (exp resolved)."""
    ps, zoom = exp["phase_space"], exp["zoom"]
    res, dtype = exp["grid"]["resolution"], exp["training"]["dtype"]
    problems = []
    if zoom["centre"] != "auto":
        for axis, c in zip(("x", "y"), zoom["centre"]):
            lo, hi = ps[axis]
            if dtype != "float64x2" and numerics.exceeds_float64(c):
                problems.append(
                    f"{where}.zoom.centre: {axis} = {c!r} has more significant digits than {dtype} keeps "
                    f"(17); the rest would be lost; allowed: training.dtype float64x2, or at most 17 digits"
                )
            if not lo <= float(c) <= hi:
                problems.append(
                    f"{where}.zoom.centre: {axis} = {c} lies outside the window {[lo, hi]} of "
                    f"phase_space.{axis}; allowed: a point inside the window, or auto"
                )
    if "pilot_resolution" in zoom and zoom["centre"] != "auto":
        problems.append(
            f"{where}.zoom.pilot_resolution: given, but only the automatic centre's search uses pilot "
            f"frames (zoom.centre is not auto); allowed: leave it out, or zoom.centre: auto"
        )
    elif zoom.get("pilot_resolution", 0) > res:
        problems.append(
            f"{where}.zoom.pilot_resolution: {zoom['pilot_resolution']} is more than the frames' "
            f"{res} pixels per side (grid.resolution); allowed: up to {res}"
        )
    factor = zoom["factor"]
    if not math.isfinite(factor):
        return problems + [
            f"{where}.zoom.factor: {factor} is not a finite number; allowed: a finite number > 1"
        ]
    deepest, frames = zoom["max_frames"], zoom["frames"]
    if deepest > grid.MAX_FRAMES and (frames == "max" or zoom["centre"] == "auto"):
        why = []
        if frames == "max":
            why.append("frames: max asks for every frame down to it")
        if zoom["centre"] == "auto":
            why.append("the automatic centre's search descends to it whatever frames says")
        smallest = grid.smallest_factor((ps["x"], ps["y"]), zoom["centre"], res, dtype)
        return problems + [
            f"{where}.zoom.factor: {factor!r} is too close to 1: the {dtype} limit at {res} pixels lies more "
            f"than {grid.MAX_FRAMES} frames deep and {' and '.join(why)}, but a sequence "
            f"has at most {grid.MAX_FRAMES} frames (trainability.contract.grid.MAX_FRAMES); allowed: a "
            f"factor of at least {smallest:g}"
            + ("" if zoom["centre"] == "auto" else f", or frames: 1..{grid.MAX_FRAMES}")
        ]
    if frames > grid.MAX_FRAMES and deepest > grid.MAX_FRAMES:
        return problems + [
            f"{where}.zoom.frames: {frames} frames are more than a sequence may have "
            f"(trainability.contract.grid.MAX_FRAMES = {grid.MAX_FRAMES}); allowed: 1..{grid.MAX_FRAMES}"
        ]
    if not problems and frames > max(deepest, 1):
        decades = grid.depth_decades(factor, deepest - 1)
        problems.append(
            f"{where}.zoom.frames: {frames} frames are too many: at {res} pixels in {dtype}, "
            f"neighbouring pixels of deeper frames get equal hyperparameters (too narrow); the deepest "
            f"sequence from this window and factor {factor:g} has {deepest} frames "
            f"({decades:.1f} decades); allowed: 1..{deepest} or max" + DEEPER[dtype]
        )
    return problems


def semantic_problems(name: str, exp: dict, workdir: Path) -> list[str]:
    """Checks the schema cannot express; exp is resolved, its grid within the caps
    (``shard_limit_problems``, checked first: resolving loops over the frames). Each stage
    needs the one before it sound: bounds, then frame 0's pixels, then the rest."""
    where = f"experiments.{name}"
    problems = bounds_problems(where, exp) or window_problems(where, exp)
    if problems:
        return problems
    problems = zoom_problems(where, exp) + extension_problems(where, exp)
    if problem.model_kind(exp["model"]) == "mlp":
        problems += data_file_problems(where, exp, workdir) + minibatch_problems(where, exp, workdir)
    return problems


def window_problems(where: str, exp: dict) -> list[str]:
    """Frame 0 must give neighbouring pixels distinct hyperparameters (deeper frames:
    ``zoom_problems``)."""
    ps, res, dtype = exp["phase_space"], exp["grid"]["resolution"], exp["training"]["dtype"]
    problems = []
    for axis in ("x", "y"):
        lo, hi = ps[axis]
        if not grid.axis_resolves_pixels(lo, hi, res, dtype):
            problems.append(
                f"{where}.phase_space.{axis}: window {[lo, hi]} is too narrow for {res} pixels in "
                f"{dtype}: neighbouring pixels get equal hyperparameters; "
                + ("use dtype float64 or " if dtype != "float64" else "use ")
                + "a wider window or a lower resolution"
            )
    return problems


def data_file_problems(where: str, exp: dict, workdir: Path) -> list[str]:
    """An init file that reads as the model's weights and data, and no size beside it."""
    data, problems = exp["data"], []
    if "init_file" in data:
        try:
            problem.load_init_file(workdir / data["init_file"], exp["model"], data.get("target_dim", 1))
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{where}.data.init_file: {err}")
        if "size" in data:
            problems.append(
                f"{where}.data.size: given with data.init_file, whose X sets the dataset size; "
                f"allowed: one of the two"
            )
    return problems


def minibatch_problems(where: str, exp: dict, workdir: Path) -> list[str]:
    """Minibatch settings that fit the dataset, and none with a full batch."""
    training, problems = exp["training"], []
    batch = training["batch"]
    if "minibatch_seed" in training and batch == "full":
        problems.append(f"{where}.training.minibatch_seed: given but training.batch is 'full'")
    if "minibatch_file" in training and batch == "full":
        problems.append(f"{where}.training.minibatch_file: given but training.batch is 'full'")
    if batch == "full":
        return problems
    try:
        n = problem.dataset_size_of(exp, workdir)
    except (OSError, ValueError, KeyError):
        return problems  # the init_file problem is named by data_file_problems
    if batch > n:
        problems.append(
            f"{where}.training.batch: a minibatch of {batch} is larger than the dataset ({n} points); "
            f"allowed: 1..{n} or full"
        )
    if "minibatch_file" in training:
        try:
            problem.load_minibatch_file(workdir / training["minibatch_file"], training["steps"], batch, n)
        except (OSError, ValueError) as err:
            problems.append(f"{where}.training.minibatch_file: {err}")
    return problems


def validation_warnings(experiments: dict[str, dict]) -> list[str]:
    """What a valid config asks for that cannot give every result: a user hears it before any job."""
    warnings = []
    for name, exp in experiments.items():
        res = exp["grid"]["resolution"]
        if not box_counting.measurable((res - 1, res - 1)):
            warnings.append(
                f"experiments.{name}.grid.resolution: {res} is too small to measure a box-counting "
                f"dimension: a frame's {res - 1}x{res - 1} edge map leaves box counting fewer than 2 box "
                f"sizes (trainability.boundary.box_counting); it measures from resolution "
                f"{box_counting.smallest_measurable_resolution()} on. Its dimension.json and the dimension "
                f"table will say n/a"
            )
    return warnings
