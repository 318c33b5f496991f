"""`trainability selftest`: the real command on this CPU, its verdicts, and its errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainability import selftest
from trainability.kernels import c_cpu, torch_batched

ROOT = Path(__file__).resolve().parents[1]


def test_the_command_checks_every_cpu_kernel_and_writes_its_report(tmp_path):
    out = tmp_path / "selftest.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainability.cli",
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
    }
    # the window straddles the boundary, so agreement is not vacuous
    assert 0.3 < report["reference"]["converged_fraction"] < 0.9
    assert report["reference"]["agreement"]["ok"] and report["reference"]["agreement"]["pixels"] == 8
    assert rows[("fused", "float32")]["status"] == "unsupported"
    assert "float64 only" in rows[("fused", "float32")]["why"]
    expected_reference = "fused" if c_cpu.load_library() is not None else "torch"
    assert report["reference"]["kernel"] == expected_reference
    for key in (("torch", "float64"), ("torch", "float32"), (expected_reference, "float64")):
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

    def off_by_a_little(problem, learning_rates, offsets, **kw):
        return real(problem, np.asarray(learning_rates) * (1 + 1e-6), offsets, **kw)

    monkeypatch.setattr(torch_batched, "train", off_by_a_little)
    report = selftest.run("cpu", resolution=8, steps=100, progress=lambda line: None)
    rows = {(r.kernel, r.dtype): r for r in report.rows}
    assert rows[("torch", "float64")].status == "DISAGREES"
    assert rows[("torch", "float64")].agreement["max_rel_diff_converged"] > 1e-9
    assert not report.ok
    assert "DISAGREES" in report.table() and "FAILED" in report.table()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cuda"], "no CUDA device is visible here; allowed: cpu, or auto"),
        (["--device", "cpu", "--steps", "5"], "allowed: resolution >= 8 and steps >= 20"),
        (["--device", "cpu", "--init-file", "nosuch.npz"], "nosuch.npz: the author's initial weights"),
    ],
)
def test_bad_usage_is_one_clear_error(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "trainability.cli", "selftest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
