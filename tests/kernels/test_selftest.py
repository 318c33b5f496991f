"""`trainability selftest`: the real command on this CPU, its verdicts, and its errors."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainability.kernels import agreement, c_cpu, torch_batched
from trainability.ops import selftest

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_checks_every_cpu_kernel_and_writes_its_report(tmp_path):
    out = tmp_path / "selftest.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainability.ops.cli",
            "selftest",
            "--device",
            "cpu",
            "--steps",
            "300",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OK: every kernel agrees with the reference" in proc.stdout
    report = json.loads(out.read_text())
    assert report["ok"] and report["device"] == "cpu"
    rows = {(r["kernel"], r["dtype"]): r for r in report["rows"]}
    assert set(rows) == {
        ("fused", "float64"),
        ("fused", "float32"),
        ("torch", "float64"),
        ("torch", "float32"),
        ("fused", "float64x2"),
        ("torch", "float64x2"),
    }
    # the window straddles the boundary, so agreement is not vacuous
    assert 0.3 < report["reference"]["converged_fraction"] < 0.9
    assert report["reference"]["agreement"]["ok"] and report["reference"]["agreement"]["pixels"] == 8
    assert rows[("fused", "float32")]["status"] == "unsupported"
    assert "float64 and float64x2" in rows[("fused", "float32")]["why"]
    expected_reference = "fused" if c_cpu.load_library() is not None else "torch"
    assert report["reference"]["kernel"] == expected_reference
    assert rows[("torch", "float64x2")]["status"] == "unsupported"
    assert "the C kernel, on CPU" in rows[("torch", "float64x2")]["why"]
    for key in (
        ("torch", "float64"),
        ("torch", "float32"),
        (expected_reference, "float64"),
        ("fused", "float64x2"),
    ):
        row = rows[key]
        assert row["status"] == "agrees", row
        assert row["agreement"]["label_agreement"] >= 0.995
        assert row["pixel_steps_per_s"] > 0
        frame = 4096 * 4096 * 1000 / row["pixel_steps_per_s"]
        assert row["estimated_frame_seconds"] == pytest.approx(frame)
    compared = rows[("torch", "float64")]["agreement"]
    assert compared["compared_converged_pixels"] > 10 and compared["max_rel_diff_converged"] <= 1e-9


def test_a_kernel_that_computes_something_else_is_caught(monkeypatch):
    """The torch kernel trained with learning rates 1e-6 too large: labels may all agree,
    but the stable pixels' measure does not, so the verdict is DISAGREES."""
    real = torch_batched.train

    def off_by_a_little(run):
        return real(dataclasses.replace(run, learning_rates=run.learning_rates * (1 + 1e-6)))

    monkeypatch.setattr(torch_batched, "train", off_by_a_little)
    report = selftest.run("cpu", resolution=8, steps=100, progress=lambda line: None)
    rows = {(r.kernel, r.dtype): r for r in report.rows}
    assert rows[("torch", "float64")].status == "DISAGREES"
    assert rows[("torch", "float64")].agreement["max_rel_diff_converged"] > 1e-9
    assert not report.ok
    assert "DISAGREES" in report.table() and "FAILED" in report.table()


@pytest.mark.parametrize(
    "resolution, steps",
    # On a healthy CPU these reported DISAGREES: float32 divergence steps (16x16 at 50, 32x32
    # at 50), float32 labels (16x16 at 100, 8x8 at 300), the float64 measure (16x16 at 200).
    [(16, 20), (16, 50), (16, 100), (16, 200), (8, 300), (32, 50)],
)
def test_a_healthy_cpu_agrees_at_every_step_count(resolution, steps):
    report = selftest.run("cpu", resolution=resolution, steps=steps, progress=lambda line: None)
    verdicts = {(r.kernel, r.dtype): (r.status, r.why) for r in report.rows}
    assert report.ok, verdicts
    assert verdicts[("torch", "float64")][0] == verdicts[("torch", "float32")][0] == "agrees", verdicts
    for dtype in ("float64", "float32"):
        agreement = next(r.agreement for r in report.rows if (r.kernel, r.dtype) == ("torch", dtype))
        # the labels are judged on most of the grid, not waved through
        assert agreement["judged_label_pixels"] >= 0.6 * resolution**2, agreement


def test_agreement_waves_through_only_what_rounding_decides():
    """settled_labels and the onset tolerance, on hand-made statistics of four pixels."""
    reference = {
        "loss_initial": np.ones(4),
        "loss_final": np.array([0.5, 2.0, 1e6, 0.5]),  # pixel 1 spikes at the very end
        "tail_mean_u": np.array([0.5, 0.9, 1e6, 0.5]),
        "sum_u": np.full(4, 10.0),
        "sum_inv_u": np.full(4, 20.0),
        "loss_min": np.full(4, 0.5),
        "diverged_step": np.array([-1, -1, 30, -1]),
    }
    float32 = {
        **reference,
        "tail_mean_u": np.array([0.5, 1.1, 1e6, 0.5]),
        "diverged_step": np.array([-1, -1, 31, -1]),
    }
    assert agreement.settled_labels(reference, float32).tolist() == [True, False, True, True]
    judged = agreement.settled_labels(reference, float32)
    strict = agreement.compare_pixels(reference, float32, rtol=np.inf, diverged_rtol=np.inf)
    assert (
        not strict["ok"] and strict["label_disagreements"] == 1 and strict["diverged_onset_mismatches"] == 1
    )
    lenient = agreement.compare_pixels(
        reference, float32, rtol=np.inf, diverged_rtol=np.inf, judged_labels=judged, onset_steps=1
    )
    assert lenient["ok"] and lenient["judged_label_pixels"] == 3
    # a label flipped on a settled pixel, or an onset two steps off, still fails
    flipped = {
        **float32,
        "tail_mean_u": np.array([1.5, 1.1, 1e6, 0.5]),
        "loss_final": np.array([2.0, 2.0, 1e6, 0.5]),
    }
    assert not agreement.compare_pixels(
        reference, flipped, rtol=np.inf, diverged_rtol=np.inf, judged_labels=judged, onset_steps=1
    )["ok"]
    late = {**float32, "diverged_step": np.array([-1, -1, 32, -1])}
    assert not agreement.compare_pixels(
        reference, late, rtol=np.inf, diverged_rtol=np.inf, judged_labels=judged, onset_steps=1
    )["ok"]


def test_perturbed_weights_moves_every_weight_by_the_perturbation():
    problem = selftest.load_problem()
    moved = agreement.perturbed_weights(problem, 1e-5, seed=3)
    for before, after in zip(problem.weights, moved.weights):
        ratio = after / before
        assert np.allclose(np.abs(ratio - 1), 1e-5, rtol=1e-6)
        assert (ratio > 1).any() and (ratio < 1).any()  # random signs, not a rescaling
    assert moved.X is problem.X and moved.Y is problem.Y


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cuda"], "--device 'cuda': no CUDA device is visible here"),
        (["--device", "cuda"], "allowed: cpu, or auto"),
        (
            ["--device", "tpu"],
            "--device 'tpu' is not a device; allowed: auto (CUDA when visible, else cpu), cpu",
        ),
        (["--device", "cuda:x"], "--device 'cuda:x' is not a device; allowed:"),
        (["--device", "cpu", "--steps", "5"], "allowed: resolution >= 8 and steps >= 20"),
        (["--device", "cpu", "--init-file", "nosuch.npz"], "nosuch.npz: the author's initial weights"),
    ],
)
def test_bad_usage_is_one_clear_error(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "trainability.ops.cli", "selftest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
