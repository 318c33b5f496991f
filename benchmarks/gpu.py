"""Everything the GPU path owes, measured in one call on one GPU (``benchmarks/gpu.sh``).

Needs only what a GPU image has (PyTorch, Triton, numpy, h5py, pytest; no
snakemake, no venv): the package runs from ``PYTHONPATH=workflow:.``, which
gpu.sh sets. The steps, in order of importance, each in its own process with
its own time limit, all within ``--budget`` seconds (default 480, the issue's
8 minutes); a step that fails or runs out of time is recorded and the next one
runs:

1. ``tests``: the CUDA tests of the kernels (pytest ``-k cuda``);
2. ``selftest``: ``trainability selftest --device cuda`` (agreement, speed);
3. ``benchmark``: ``benchmarks.run`` at 1024^2 x 1000 steps, float64 and
   float32, ours and the alternatives (each JSON row has the 4096^2 estimate);
4. ``sweep``: ``benchmarks.triton_sweep``, the Triton kernel's variants;
5. ``label_agreement``: C kernel vs the GPU kernels, labels and bits (needs
   pyyaml and jsonschema; skipped, and said so, without them);
6. ``optimizers``: ``benchmarks.optimizers --device cuda``, momentum and Adam in
   the Triton kernel against gd (what time the budget leaves).

Each step writes its own JSON under ``--out-dir`` (default benchmarks/results);
``gpu-<gpu>.json`` there records every step: command, exit status, seconds,
the tail of its output and the files it wrote. ``--dry`` runs every step's
small CPU form (the Triton parts under TRITON_INTERPRET=1) into a temporary
directory: what the tests run to check this script without a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import machine, output

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "trainability-gpu-measurements/1"
TAIL_CHARS = 4000


def steps(out: Path, tag: str, dry: bool) -> list[dict]:
    """name, argv (after ``python -m``), seconds allowed, and what it needs, per step."""
    py = [sys.executable, "-m"]
    tests = [
        "tests/kernels/test_c_cpu.py",
        "tests/kernels/test_triton_variants.py",
        "-q",
        "-k",
        "cuda",
        "-p",
        "no:cacheprovider",
    ]
    selftest = ["trainability.ops.cli", "selftest", "--json", str(out / f"selftest-{tag}.json")]
    bench = ["benchmarks.run", "--repeats", "1", "--out", str(out / f"{tag}-1024.json")]
    agree = ["benchmarks.label_agreement", "--output", str(out / f"agreement-{tag}.json")]
    opt = ["benchmarks.optimizers", "--output", str(out / f"optimizers-{tag}.json")]
    if dry:
        opt += ["--device", "cpu", "--resolution", "2", "--steps", "5", "--repeats", "2"]
        selftest += ["--device", "cpu", "--resolution", "8", "--steps", "20"]
        bench += ["--device", "cpu", "--resolution", "4", "--steps", "20", "--gemm-n", "256"]
        bench += ["--impl", "ours", "--dtype", "float64"]
        sweep = ["benchmarks.triton_sweep", "--dry", "--out", str(out / f"triton-sweep-{tag}.json")]
        agree += ["--pairs", "fused:cpu", "torch:cpu", "--resolution", "4", "--steps", "50"]
    else:
        selftest += ["--device", "cuda"]
        bench += [
            "--device",
            "cuda",
            "--resolution",
            "1024",
            "--steps",
            "1000",
            "--dtype",
            "float64",
            "float32",
        ]
        bench += ["--impl", "ours", "ours_torch", "autograd_loop", "jax_author"]
        sweep = ["benchmarks.triton_sweep", "--out", str(out / f"triton-sweep-{tag}.json")]
        agree += ["--pairs", "fused:cpu", "fused:cuda", "torch:cuda", "--resolution", "32"]
        opt += ["--device", "cuda", "--resolution", "256", "--steps", "1000", "--repeats", "2"]
    return [
        {"name": "tests", "argv": py + ["pytest", *tests], "seconds": 90},
        {"name": "selftest", "argv": py + selftest, "seconds": 90},
        {"name": "benchmark", "argv": py + bench, "seconds": 130},
        {"name": "sweep", "argv": py + sweep, "seconds": 125},
        {"name": "label_agreement", "argv": py + agree, "seconds": 45, "needs": ("yaml", "jsonschema")},
        {"name": "optimizers", "argv": py + opt, "seconds": 40},
    ]


def run_step(step: dict, seconds: float, env: dict) -> dict:
    record = {"name": step["name"], "command": " ".join(step["argv"][1:]), "seconds_allowed": round(seconds)}
    missing = [m for m in step.get("needs", ()) if importlib.util.find_spec(m) is None]
    if missing:
        return {**record, "status": "skipped", "why": f"needs {', '.join(missing)} (not installed)"}
    if seconds < 20:
        return {**record, "status": "not run", "why": "the time budget (--budget) is spent"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            step["argv"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds
        )
        status = "ok" if proc.returncode == 0 else "failed"
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        status, rc = "timeout", None
        text = (err.stdout or b"").decode(errors="replace") + (err.stderr or b"").decode(errors="replace")
    return {
        **record,
        "status": status,
        "returncode": rc,
        "seconds": round(time.perf_counter() - start, 1),
        "output_tail": text[-TAIL_CHARS:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="small CPU forms of every step (no GPU needed)")
    parser.add_argument(
        "--out-dir", type=Path, help="default: benchmarks/results (--dry: a temporary directory)"
    )
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all steps (default 480)")
    args = parser.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        parser.error("no CUDA device is visible; run on a GPU node, or --dry to check this script on CPU")
    out = args.out_dir or (
        Path(tempfile.mkdtemp(prefix="trainability-gpu-dry-")) if args.dry else ROOT / "benchmarks/results"
    )
    out.mkdir(parents=True, exist_ok=True)
    tag = "dry-cpu" if args.dry else "cuda-" + output.slug(torch.cuda.get_device_name(0))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "workflow"), str(ROOT), env.get("PYTHONPATH")) if p
    )
    if args.dry:
        env["CUDA_VISIBLE_DEVICES"] = ""
    deadline = time.perf_counter() + args.budget
    before = {p.name for p in out.iterdir()}
    records = []
    for step in steps(out, tag, args.dry):
        left = deadline - time.perf_counter()
        record = run_step(step, min(step["seconds"], left), env)
        records.append(record)
        print(
            f"{record['name']:16} {record['status']:8} {record.get('seconds', 0):6.1f} s  "
            f"{record['command']}",
            flush=True,
        )
    report = {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "dry": args.dry,
        "machine": {"gpu": None if args.dry else machine.gpu_info(), "versions": machine.versions()},
        "budget_seconds": args.budget,
        "steps": records,
        "files": sorted({p.name for p in out.iterdir()} - before),
    }
    summary = out / f"gpu-{tag}.json"
    tmp = summary.with_name(f".{summary.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, summary)
    print(f"written: {summary}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
