"""``trainability selftest``: do this machine's kernels give the right answers, and how fast?

Run it on a GPU node before a large run (``srun --gpus=1 trainability selftest
--device cuda``). In about a minute it trains a small grid across the
trainability boundary of the author's problem (``resources/author_init``: tanh,
width 16, N = 272, full batch; the benchmark's window, log10 lr of W0 in [0, 1.5]
and of W1 in [1.5, 2.7], where about 70% of pixels converge) with

* the CPU reference: the fused C kernel (the batched torch kernel where no C
  compiler is found) in float64, itself checked on a spread subset of pixels
  against the per-pixel autograd implementation (``kernels.reference``), plus
  the perturbed runs that tell chaotic pixels from stable ones, once per dtype
  with the perturbation scaled to its rounding (``agreement.perturbed_learning_rates``,
  ``perturbed_weights``, ``rounding_scale``);
* every kernel the device supports (``fused``, ``torch``) in every dtype it
  supports, each judged against the reference by the benchmark's criteria
  (``trainability.kernels.agreement``). Labels on >= 99.5% of the pixels whose label
  cannot hinge on rounding (away from the boundary, no loss crossing its start in
  the last steps: ``settled_labels``). float64: stable converged pixels away from
  the boundary to 1e-9, diverged pixels there the same divergence step and the
  measure to 1e-6. float32: divergence steps at most one step apart on the pixels
  stable at float32's rounding; its measure is not compared (float32 rounding,
  1e-7, moves the measure of most converged pixels in this window by percent, and
  of diverged ones by up to 1e-3, as a 1e-13 change of a learning rate does in
  float64). float64x2 (double-double): float64's criteria, the diverged pixels'
  measure not compared (a saturated tanh's derivative is exactly 0 in float64, not in
  double-double, so diverging trajectories part by up to about 1e-5). These criteria
  hold at every step count and resolution the command accepts
  (tests/kernels/test_selftest.py runs 20 to 300 steps);

and times each on a grid large enough to fill the device, reporting
pixel-steps/s and the estimated time of a 4096^2-pixel, 1000-step frame.
Exit status 1 when any kernel disagrees, 2 on bad usage.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainability.contract import numerics
from trainability.contract.problem import DTYPES, Problem, as_problem, per_layer_learning_rates
from trainability.kernels import dispatch, reference
from trainability.kernels.agreement import (
    DIVERGED_RTOL,
    LABEL_AGREEMENT,
    MEASURE_RTOL,
    PERTURBATION,
    STABLE_RTOL,
    away_from_boundary,
    check_agreement,
    compare_pixels,
    perturbed_learning_rates,
    perturbed_weights,
    rounding_scale,
    stable_pixels,
)
from trainability.kernels.backend import TORCH_DTYPES, Run
from trainability.results import files

# The benchmark problem (benchmarks/README.md), defined here for the self-test and the benchmarks.
INIT_FILE = Path(__file__).resolve().parents[3] / "resources" / "author_init" / "author_init_N272.npz"
WINDOW_X, WINDOW_Y = (0.0, 1.5), (1.5, 2.7)  # log10 lr of W0, W1: straddles the boundary
NONLINEARITY = "tanh"
FRAME_PIXEL_STEPS = 4096 * 4096 * 1000  # the paper's frame, for the estimated frame times
AUTOGRAD_PIXELS = 8  # the reference's own check: autograd is ~20x slower per pixel
TIMING_SECONDS = 3.0  # aimed-for length of each timed run
TIMING_PIXELS = {"cpu": 0, "cuda": 512 * 512}  # 0: time the agreement run itself
# float32 computes the loss to ~1e-6 relative (a sum over the data), so a loss that lands
# that close to MAX_RATIO times its start crosses it a step earlier or later (seen: step
# 27 for 26 on the 32x32 grid at 50 steps, the measures 4e-7 apart).
FLOAT32_ONSET_STEPS = 1


@dataclass
class Row:
    """One kernel in one dtype on the device under test."""

    kernel: str
    dtype: str
    device: str
    status: str  # "agrees", "DISAGREES" or "unsupported"
    why: str = ""
    arithmetic: dict = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)
    pixel_steps_per_s: float | None = None
    timed_pixels: int = 0
    timed_steps: int = 0
    estimated_frame_seconds: float | None = None


@dataclass
class Report:
    device: str
    resolution: int
    steps: int
    reference: dict
    rows: list[Row]
    criteria: dict
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reference["agreement"]["ok"] and all(r.status != "DISAGREES" for r in self.rows)

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def table(self) -> str:
        cols = ("kernel", "dtype", "device", "result", "pixel-steps/s", "4096²×1000 frame")
        head = f"{cols[0]:8} {cols[1]:8} {cols[2]:14} {cols[3]:12} {cols[4]:>14} {cols[5]:>17}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            rate = f"{r.pixel_steps_per_s:,.0f}" if r.pixel_steps_per_s else "-"
            frame = _duration(r.estimated_frame_seconds) if r.estimated_frame_seconds else "-"
            lines.append(f"{r.kernel:8} {r.dtype:8} {r.device:14} {r.status:12} {rate:>14} {frame:>17}")
            if r.why:
                lines.append(f"{'':9}{r.why}")
        ref = self.reference
        lines.append(
            f"reference: {ref['kernel']} kernel on cpu, float64; {self.resolution}x{self.resolution} pixels "
            f"x {self.steps} steps, {ref['converged_fraction']:.0%} converge, "
            f"{ref['stable_fraction']:.0%} stable; {self.seconds:.0f} s in all"
        )
        lines.append(
            "OK: every kernel agrees with the reference" if self.ok else "FAILED: see DISAGREES above"
        )
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def load_problem(init_file: Path = INIT_FILE) -> Problem:
    """The author's problem; a clear error when the file is missing."""
    if not Path(init_file).is_file():
        raise FileNotFoundError(
            f"{init_file}: the author's initial weights (resources/author_init/) are missing"
        )
    with np.load(init_file) as npz:
        return as_problem([npz["W0"], npz["W1"]], npz["X"], npz["Y"])


def grid_learning_rates(resolution: int, x=WINDOW_X, y=WINDOW_Y) -> np.ndarray:
    """(R*R, 2) learning rates of the window (log10 bounds x for W0, y for W1), row-major
    (rows = lr of W1); the benchmarks use the same grid."""
    gx, gy = np.meshgrid(numerics.logspace(*x, resolution), numerics.logspace(*y, resolution))
    lrs, _ = per_layer_learning_rates(gx.ravel(), gy.ravel(), "lr_vs_lr", 2)
    return np.ascontiguousarray(lrs)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train(problem, lrs, steps, device, kernel, dtype):
    return dispatch.train_pixels(
        problem, lrs, nonlinearity=NONLINEARITY, steps=steps, dtype=dtype, device=device, kernel=kernel
    )


def _timed(problem, lrs, steps, device, kernel, dtype) -> tuple[dict, float]:
    _synchronize(device)
    start = time.perf_counter()
    stats = _train(problem, lrs, steps, device, kernel, dtype)
    _synchronize(device)
    return stats, time.perf_counter() - start


def _throughput(problem, device, kernel, dtype, max_steps) -> tuple[float, int, int]:
    """pixel-steps/s on TIMING_PIXELS[device] pixels, steps chosen from a 2-step pilot
    run so that the timed run lasts about TIMING_SECONDS."""
    lrs = grid_learning_rates(int(np.sqrt(TIMING_PIXELS[device.type])))
    _, pilot = _timed(problem, lrs, 2, device, kernel, dtype)
    steps = int(np.clip(TIMING_SECONDS / max(pilot / 2, 1e-9), 2, max_steps))
    _, seconds = _timed(problem, lrs, steps, device, kernel, dtype)
    return len(lrs) * steps / seconds, len(lrs), steps


def _stable(problem, lrs, steps, kernel, ref, dtype) -> np.ndarray:
    """The reference's pixels that are not chaotic at ``dtype``'s rounding: the chaos test
    (``agreement.stable_pixels``) with its perturbation and tolerance scaled to that dtype."""
    cpu = torch.device("cpu")
    scale = rounding_scale(dtype)
    runs = [
        _train(problem, lp, steps, cpu, kernel, "float64")
        for lp in perturbed_learning_rates(lrs, PERTURBATION * scale)
    ]
    runs.append(_train(perturbed_weights(problem, PERTURBATION * scale), lrs, steps, cpu, kernel, "float64"))
    return stable_pixels(ref, *runs, tol=STABLE_RTOL * scale)


def _reference(problem, lrs, steps, resolution, progress) -> tuple[dict, dict, dict]:
    """The CPU float64 reference grid, its stable pixels per dtype, and its own check
    against autograd on AUTOGRAD_PIXELS pixels spread over those away from the boundary."""
    cpu = torch.device("cpu")
    name = dispatch.select_kernel(problem, "float64", cpu, "auto")
    progress(f"reference: {name} kernel on cpu, float64, {resolution}x{resolution} pixels x {steps} steps")
    ref = _train(problem, lrs, steps, cpu, name, "float64")
    stable_by_dtype = {dtype: _stable(problem, lrs, steps, name, ref, dtype) for dtype in TORCH_DTYPES}
    # Double-double rounds finer than the float64 reference: judged where float64 is stable.
    stable_by_dtype["float64x2"] = stable_by_dtype["float64"]
    stable = stable_by_dtype["float64"]
    calm = np.flatnonzero(away_from_boundary((ref["diverged_step"] < 0).reshape(resolution, resolution)))
    picked = calm[np.linspace(0, len(calm) - 1, min(AUTOGRAD_PIXELS, len(calm))).round().astype(np.int64)]
    progress(f"reference check: autograd on {len(picked)} pixels")
    auto = reference.train(Run(problem, lrs[picked], nonlinearity=NONLINEARITY, steps=steps, dtype="float64"))
    agreement = compare_pixels(auto, {k: v[picked] for k, v in ref.items()}, stable[picked])
    info = {
        "kernel": name,
        "arithmetic": dispatch.arithmetic_identity(name, cpu),
        "autograd_pixels": picked.tolist(),
        "agreement": agreement,
        "converged_fraction": float((ref["diverged_step"] < 0).mean()),
        "stable_fraction": float(stable.mean()),
    }
    return ref, stable_by_dtype, info


def _candidates(problem, device: torch.device):
    """(kernel, dtype, reason it cannot run or None) for every kernel and dtype."""
    for kernel in ("fused", "torch"):
        for dtype in DTYPES:
            try:
                dispatch.choose_backend(problem, dtype, device, kernel)
                yield kernel, dtype, None
            except dispatch.KernelUnsupported as err:
                yield kernel, dtype, "; ".join(err.reasons)


def judge(reference_stats: dict, stats: dict, stable: np.ndarray, resolution: int, dtype: str) -> dict:
    """The benchmark's verdict (``agreement.check_agreement``), labels judged where they
    cannot hinge on rounding; in float32 the labels and divergence steps only (see the
    module docstring). ``stable``: the reference's stable pixels at ``dtype``'s rounding."""
    pixels = np.arange(resolution * resolution)
    shape = (resolution, resolution)
    if dtype == "float64":
        return check_agreement(reference_stats, stats, pixels, shape, stable, settled_only=True)
    if dtype == "float64x2":
        # Held to float64's criteria except on diverging pixels: where float64 rounds a saturated
        # tanh to 1 its derivative is exactly 0, double-double keeps it (~1e-17), so a diverging
        # trajectory's losses part beyond float64's rounding (seen: 2.5e-6 relative).
        verdict = check_agreement(
            reference_stats, stats, pixels, shape, stable, diverged_rtol=np.inf, settled_only=True
        )
        verdict["criteria"]["measure_rtol_diverged"] = None  # not compared (JSON has no inf)
        return verdict
    verdict = check_agreement(
        reference_stats,
        stats,
        pixels,
        shape,
        stable,
        rtol=np.inf,
        diverged_rtol=np.inf,
        settled_only=True,
        onset_steps=FLOAT32_ONSET_STEPS,
    )
    for measure in ("measure_rtol_converged", "measure_rtol_diverged"):
        verdict["criteria"][measure] = None  # not compared (JSON has no inf)
    return verdict


def _summary(agreement: dict) -> str:
    a = agreement

    def compared(criterion):
        return "" if a["criteria"][criterion] is not None else ", not compared"

    return (
        f"labels agree on {a['label_agreement']:.1%} of {a.get('judged_label_pixels', a['pixels'])} px; "
        f"max rel diff {a['max_rel_diff_converged']:.2g} (converged, {a['compared_converged_pixels']} px"
        f"{compared('measure_rtol_converged')}), {a['max_rel_diff_diverged']:.2g} (diverged, "
        f"{a['compared_diverged_pixels']} px{compared('measure_rtol_diverged')}); "
        f"onset mismatches {a['diverged_onset_mismatches']}"
    )


CRITERIA = {
    "float64": {
        "label_agreement_min": LABEL_AGREEMENT,
        "measure_rtol_converged": MEASURE_RTOL,
        "measure_rtol_diverged": DIVERGED_RTOL,
        "diverged_onset": "equal",
        "labels_judged": "away from the boundary, settled",
    },
    "float32": {
        "label_agreement_min": LABEL_AGREEMENT,
        "measure_rtol_converged": None,
        "measure_rtol_diverged": None,
        "diverged_onset": f"within {FLOAT32_ONSET_STEPS} step(s)",
        "labels_judged": "away from the boundary, settled",
    },
}


def run(
    device="auto", resolution: int = 16, steps: int = 500, *, init_file: Path = INIT_FILE, progress=print
) -> Report:
    """The self-test on one device; ``progress`` receives one line per stage."""
    started = time.perf_counter()
    if problem := dispatch.device_problem(str(device), "--device"):
        raise ValueError(problem)
    device = dispatch.resolve_device(device)
    if resolution < 8 or steps < 20:
        raise ValueError(f"resolution {resolution}, steps {steps}: allowed: resolution >= 8 and steps >= 20")
    problem = load_problem(init_file)
    lrs = grid_learning_rates(resolution)
    ref, stable_by_dtype, ref_info = _reference(problem, lrs, steps, resolution, progress)
    rows = []
    for kernel, dtype, why in _candidates(problem, device):
        row = Row(kernel, dtype, str(device), "unsupported", why or "")
        rows.append(row)
        if why:
            continue
        progress(f"{kernel} kernel on {device}, {dtype}")
        row.arithmetic = dispatch.arithmetic_identity(kernel, device, dtype)
        _train(problem, lrs[:2], 1, device, kernel, dtype)  # compiles (C build, Triton): untimed
        stats, seconds = _timed(problem, lrs, steps, device, kernel, dtype)
        if device.type == "cpu" and kernel == ref_info["kernel"] and dtype == "float64":
            row.agreement = ref_info["agreement"]  # itself: its check is the one against autograd
            row.why = f"the reference; against autograd on {len(ref_info['autograd_pixels'])} pixels: "
        else:
            row.agreement = judge(ref, stats, stable_by_dtype[dtype], resolution, dtype)
        row.status = "agrees" if row.agreement["ok"] else "DISAGREES"
        row.why += _summary(row.agreement)
        if TIMING_PIXELS[device.type]:
            row.pixel_steps_per_s, row.timed_pixels, row.timed_steps = _throughput(
                problem, device, kernel, dtype, steps
            )
        else:
            row.pixel_steps_per_s, row.timed_pixels, row.timed_steps = (
                len(lrs) * steps / seconds,
                len(lrs),
                steps,
            )
        row.estimated_frame_seconds = FRAME_PIXEL_STEPS / row.pixel_steps_per_s
    report = Report(str(device), resolution, steps, ref_info, rows, CRITERIA)
    report.seconds = time.perf_counter() - started
    return report


def write_json(report: Report, path: Path) -> None:
    files.write_json(path, report.to_json())
