"""The benchmark command on a tiny problem (seconds), its agreement check and its measured peak.

No timings are asserted beyond loose sanity bounds: only that the command runs,
writes the documented JSON, that the agreement check tells right from wrong,
and that the FMA-peak loop measures something a working loop would.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import impls, label_agreement, peaks
from trainability.kernels import c_cpu
from trainability.kernels.agreement import (
    away_from_boundary,
    check_agreement,
    compare_pixels,
    perturbed_learning_rates,
    stable_pixels,
)
from trainability.kernels.dispatch import train_pixels
from workflow_helpers import REPO as ROOT

HAS_JAX = importlib.util.find_spec("jax") is not None
ROW_KEYS = {
    "pixel_steps_per_s",
    "pixel_steps_per_s_all_repeats",
    "ratio_to_ours",
    "pixels_timed",
    "pixel_subset",
    "seconds",
    "warmup_seconds",
    "gflops",
    "fraction_of_measured_gemm_peak",
    "fraction_of_measured_fma_peak",
    "rss_peak_bytes",
    "rss_peak_extra_bytes",
    "estimated_seconds_4096x4096x1000_frame",
    "agreement_with_ours",
}


def test_benchmark_command_writes_report(tmp_path):
    out = tmp_path / "bench.json"
    names = ["ours", "ours_torch", "autograd_loop", "torch_vmap"] + (["jax_author"] if HAS_JAX else [])
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--resolution",
        "4",
        "--steps",
        "12",
        "--repeats",
        "1",
        "--impl",
        *names,
        "--subset",
        "autograd_loop=3",
        "--gemm-n",
        "256",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["schema"] == "trainability-benchmark/2"
    assert {"machine", "problem", "runs", "all_agree", "date", "command", "repeats", "skipped"} <= set(report)
    assert {"cpu", "versions", "hostname", "loadavg_before", "loadavg_after"} <= set(report["machine"])
    fma = report["machine"]["cpu"]["measured_fma_peak"]
    assert (fma["gflops"] > 0 and fma["threads"] >= 1) if peaks.compiler() else fma["why"]
    assert report["problem"]["N"] == 272 and report["problem"]["steps"] == 12
    run = report["runs"]["float64"]
    assert run["measured_gemm"]["gflops"] > 0 and run["measured_fma_peak_gflops"] == fma["gflops"]
    rows = run["implementations"]
    assert set(rows) == set(names)
    for name, row in rows.items():
        assert ROW_KEYS <= set(row), name
        assert row["pixel_steps_per_s"] > 0 and row["rss_peak_bytes"] > 0
        assert row["agreement_with_ours"]["ok"], (name, row["agreement_with_ours"])
        assert "fraction_of_theoretical_peak" not in row  # a GPU lookup; the CPU's peak is measured
    assert rows["ours"]["ratio_to_ours"] == 1.0
    assert rows["autograd_loop"]["pixels_timed"] == 3 and rows["ours"]["pixels_timed"] == 16
    assert report["all_agree"] is True
    assert rows["ours"]["kernel"] in ("fused", "torch") and rows["ours_torch"]["kernel"] == "torch"
    assert "written" in proc.stdout and "ours" in proc.stdout and "%FMA" in proc.stdout


@pytest.fixture(scope="module")
def reference():
    spec = {
        "init_file": str(ROOT / "resources/author_init/author_init_N272.npz"),
        "resolution": 8,
        "x": [0.0, 1.5],
        "y": [1.5, 2.7],
        "steps": 60,
    }
    problem = impls.load_problem(spec)
    lrs = impls.grid_learning_rates(spec)

    def run(lr):
        return train_pixels(problem, lr, nonlinearity="tanh", steps=spec["steps"], device="cpu")

    return run, lrs, run(lrs)


def test_agreement_accepts_identical_and_flags_wrong(reference):
    run, lrs, ref = reference
    shape = (8, 8)
    pixels = np.arange(64)
    m = ref["sum_u"]
    assert (ref["tail_mean_u"] < 1).any() and (ref["tail_mean_u"] >= 1).any(), "window must straddle"
    assert check_agreement(ref, ref, pixels, shape)["ok"]
    # A deliberately wrong implementation: the gradient off by a factor 2
    # (as if the MSE derivative lost its 2), i.e. half the learning rates.
    wrong = run(lrs * 0.5)
    verdict = check_agreement(ref, wrong, pixels, shape)
    assert not verdict["ok"] and verdict["max_rel_diff_converged"] > 1e-9
    # One flipped label in 64 pixels (1.6% > 0.5%) fails even with equal measures elsewhere.
    flipped = {k: v.copy() for k, v in ref.items()}
    i = int(np.argmin(ref["tail_mean_u"]))
    flipped["tail_mean_u"][i] = 2.0
    verdict = check_agreement(ref, flipped, pixels, shape)
    assert not verdict["ok"] and verdict["label_disagreements"] == 1
    # A 1e-7 relative error of the measure on a converged pixel away from the boundary fails.
    converged = ref["tail_mean_u"] < 1
    away = away_from_boundary(converged.reshape(shape)).ravel()
    j = int(np.nonzero(away & converged)[0][0])
    nudged = {k: v.copy() for k, v in ref.items()}
    for name in ("sum_u", "sum_inv_u"):
        nudged[name][j] *= 1 + 1e-7
    assert not check_agreement(ref, nudged, pixels, shape)["ok"]
    # ... but passes where the pixel is excluded as chaotic (stable mask False).
    stable = np.ones(64, dtype=bool)
    stable[j] = False
    assert check_agreement(ref, nudged, pixels, shape, stable=stable)["ok"]
    # A diverged pixel away from the boundary must diverge at the same step.
    k = int(np.nonzero(away & ~converged & (ref["diverged_step"] > 0))[0][0])
    late = {kk: v.copy() for kk, v in ref.items()}
    late["diverged_step"][k] += 1
    verdict = check_agreement(ref, late, pixels, shape)
    assert not verdict["ok"] and verdict["diverged_onset_mismatches"] == 1
    # A subset of pixels is compared against the same pixels of the reference.
    sub = np.array([3, 17, 40])
    part = {k: v[sub] for k, v in ref.items()}
    assert check_agreement(ref, part, sub, shape)["ok"]
    assert m.shape == (64,)


def test_away_from_boundary_and_stability(reference):
    labels = np.zeros((5, 5), dtype=bool)
    labels[:, 3:] = True
    away = away_from_boundary(labels)
    assert away[:, 0:2].all() and away[:, 4].all() and not away[:, 2:4].any()
    _, _, ref = reference
    assert stable_pixels(ref, ref, ref).all()
    moved = {k: v.copy() for k, v in ref.items()}
    moved["sum_u"] *= 1 + 1e-6
    moved["sum_inv_u"] *= 1 + 1e-6
    assert not stable_pixels(ref, moved).any()


def test_compare_pixels_without_a_grid(reference):
    """The ungridded verdict (what a self-test on a handful of pixels uses)."""
    run, lrs, ref = reference
    inputs = perturbed_learning_rates(lrs)
    assert [(lp != lrs).all(axis=0).tolist() for lp in inputs] == [[True, False], [False, True]]
    perturbed = [run(lp) for lp in inputs]
    stable = stable_pixels(ref, *perturbed)
    assert stable.shape == (64,) and stable.any()
    assert compare_pixels(ref, ref, stable, label_agreement=1.0)["ok"]
    wrong = run(lrs * 0.5)
    verdict = compare_pixels(ref, wrong, stable)
    assert not verdict["ok"]
    assert verdict["compared_converged_pixels"] + verdict["compared_diverged_pixels"] == stable.sum()
    with pytest.raises(ValueError, match="pixels"):
        compare_pixels(ref, {k: v[:3] for k, v in ref.items()})


@pytest.mark.skipif(peaks.compiler() is None, reason="no C compiler")
def test_measured_fma_peak_is_plausible():
    """A working FMA loop is at least about as fast as a GEMM (which is made of FMAs) and
    below any core's FMA rate; a broken one (0, spilled to memory, miscounted) is not."""
    threads = len(os.sched_getaffinity(0))
    fma = peaks.measured_fma_peak(threads, seconds=0.2, repeats=3)
    gemm = peaks.measured_gemm_gflops("cpu", "float64", threads, repeats=2, n=1024)
    assert fma["gflops"] > 0 and len(fma["gflops_all_repeats"]) == 3 and fma["threads"] == threads
    assert fma["gflops"] >= 0.5 * gemm["gflops"], (fma, gemm)
    # 2 FMA units x 8 doubles x 2 FLOP x 6 GHz = 192 GFLOP/s per core: no CPU is near 500.
    assert fma["gflops_per_thread"] < 500, fma


def test_label_agreement_tells_the_same_arithmetic_from_another(tmp_path):
    """benchmarks.label_agreement: the reference agrees with itself on every bit; the torch
    kernel's other summation order changes the bits."""
    out = tmp_path / "agreement.json"
    label_agreement.main(
        ["--pairs", "fused:cpu", "torch:cpu", "--resolution", "5", "--steps", "200", "--output", str(out)]
    )
    report = json.loads(out.read_text())
    assert set(report["windows"]) == {"paraminit", "tanh"} and report["resolution"] == 5
    for window in report["windows"].values():
        runs = window["runs"]
        assert set(runs) == {"fused:cpu", "torch:cpu"} and window["steps"] == 200
        fused, torch_run = runs["fused:cpu"], runs["torch:cpu"]
        assert (
            fused["label_agreement_with_fused:cpu"] == fused["bit_identical_fraction_with_fused:cpu"] == 1.0
        )
        assert fused["arithmetic"]["build"] == "fixed-order-fma-1"
        assert torch_run["arithmetic"]["build"].startswith("torch ")
        assert 0.0 <= torch_run["label_agreement_with_fused:cpu"] <= 1.0
        assert torch_run["bit_identical_fraction_with_fused:cpu"] < 1.0


def test_optimizer_benchmark_writes_each_optimizer_relative_to_gd(tmp_path):
    """benchmarks.optimizers, tiny: every optimiser timed, gd's ratio exactly 1."""
    if c_cpu.load_library() is None:
        pytest.skip("the fused C kernel is unavailable")
    out = tmp_path / "opt.json"
    cmd = [sys.executable, "-m", "benchmarks.optimizers", "--resolution", "2", "--steps", "5"]
    proc = subprocess.run(
        [*cmd, "--repeats", "2", "--output", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["optimizers"]) == {"gd", "momentum", "adam"}
    assert report["optimizers"]["gd"]["speed_relative_to_gd"] == 1.0
    assert all(row["pixel_steps_per_s"] > 0 for row in report["optimizers"].values())
    assert report["problem"] == {"init_file": "author_init_N272.npz", "pixels": 4, "steps": 5}
    assert {"cpu", "versions"} <= set(report["machine"])


def test_centre_search_benchmark_reports_each_sequences_path(tmp_path):
    """benchmarks.centre_search on a tiny automatic zoom: the path it reports is the one
    the search took (levels deepening to the last, roughness in [0, 2]), and the centre is
    inside the central half of the window."""
    config = {
        "experiments": {
            "auto": {
                "title": "tanh, automatic zoom",
                "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
                "data": {"size": "params", "target_dim": 1, "seed": 3},
                "training": {"steps": 30},
                "phase_space": {"kind": "lr_vs_lr", "x": [-1, 3], "y": [-1, 3]},
                "grid": {"resolution": 16, "shard_size": 256},
                "zoom": {"frames": 3, "factor": 4, "centre": "auto", "pilot_resolution": 8},
            }
        }
    }
    path, out = tmp_path / "zoom.yaml", tmp_path / "centre.json"
    path.write_text(json.dumps(config))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.centre_search",
        str(path),
        "--threads",
        "1",
        "--output",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (search,) = json.loads(out.read_text())["searches"]
    levels = [p["level"] for p in search["path"]]
    assert levels == sorted(levels) and levels[-1] == search["depth_levels"] - 1
    assert all(0.0 <= p["roughness"] <= 2.0 for p in search["path"])
    assert all(0.0 <= c <= 2.0 for c in search["centre"])  # the central half of [-1, 3]
    assert search["pixels_trained"] > 0 and search["pilot"] == 8
