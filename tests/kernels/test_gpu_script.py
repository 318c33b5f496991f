"""benchmarks/gpu.sh, the one-call GPU measurement: its syntax, and its dry mode run for real on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu.sh"
STEPS = ["tests", "selftest", "benchmark", "sweep", "label_agreement", "optimizers"]


def test_the_script_parses():
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_without_a_gpu_it_refuses_to_measure(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no CUDA device is visible" in proc.stderr and "--dry" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_the_dry_mode_runs_every_step_and_records_it(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("PYTHONPATH", None)  # the script sets it: the GPU image has no installed package
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "gpu-dry-cpu.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == STEPS
    failed = {n: s.get("output_tail", s.get("why"))[-1500:] for n, s in steps.items() if s["status"] != "ok"}
    assert not failed, failed
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert report["dry"] is True and report["schema"].startswith("trainability-gpu-measurements/")
    written = set(report["files"])
    for name in (
        "selftest-dry-cpu.json",
        "dry-cpu-1024.json",
        "triton-sweep-dry-cpu.json",
        "agreement-dry-cpu.json",
        "optimizers-dry-cpu.json",
    ):
        assert name in written
        assert json.loads((tmp_path / name).read_text())
    assert json.loads((tmp_path / "selftest-dry-cpu.json").read_text())["ok"] is True
