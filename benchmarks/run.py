"""Benchmark the training kernel against the alternatives, in one run, on one machine.

    .venv/bin/python -m benchmarks.run                    # CPU, defaults below
    .venv/bin/python -m benchmarks.run --device cuda --resolution 4096 --steps 1000 \
        --dtype float64 float32                           # the GPU frame targets

Every implementation trains the same problem (the author's initial weights and
data, tanh, width 16, N = 272, full batch) on the same hyperparameter window,
each repeat in a fresh subprocess (so each peak memory is its own), the
implementations interleaved within a repeat (so machine noise hits all of
them alike); the best repeat counts. Results go to
benchmarks/results/<device>-<model>.json and a table to stdout.
See benchmarks/README.md for the definitions (FLOP count, peaks, agreement).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import impls, machine, output, peaks
from trainability.boundary.scoring import convergence_measure
from trainability.contract.problem import flops_per_pixel_step
from trainability.kernels import dispatch
from trainability.kernels.agreement import (
    away_from_boundary,
    check_agreement,
    perturbed_learning_rates,
    stable_pixels,
)
from trainability.ops import selftest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "trainability-benchmark/2"
DEFAULT_INIT = selftest.INIT_FILE
# A window straddling the tanh full-batch boundary (log10 learning rates of
# W0 (x) and W1 (y)); wide enough to hold both regions and the boundary.
DEFAULT_WINDOW = (selftest.WINDOW_X, selftest.WINDOW_Y)
# Pixels per implementation when not all: the slow ones are timed on a subset.
DEFAULT_SUBSET = {
    "cpu": {"autograd_loop": 4},
    "cuda": {"autograd_loop": 2, "ours_torch": 262144, "torch_vmap": 65536, "jax_author": 65536},
}
# The author's train() splits the grid into batches of 50000 pixels.
DEFAULT_CHUNK = {"torch_vmap": 50000, "jax_author": 50000}


def run_worker(spec: dict, workdir: Path, tag: str) -> tuple[dict, dict]:
    spec_path = workdir / f"{tag}.spec.json"
    spec_path.write_text(json.dumps(spec))
    prefix = str(workdir / tag)
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *inherited])
    if spec["device"] == "cpu":
        env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", str(spec_path), prefix],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['impl']} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    with open(prefix + ".json") as f:
        result = json.load(f)
    with np.load(prefix + ".npz") as npz:
        stats = {k: npz[k] for k in npz.files}
    return result, stats


def time_implementations(args, wanted: list[str], subset: dict, dtype: str) -> tuple[dict, dict]:
    """All repeats of all implementations, interleaved: per name the workers' results and last stats."""
    n_total = args.resolution**2
    results: dict[str, list] = {name: [] for name in wanted}
    stats: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for r in range(args.repeats):
            for name in wanted:
                pixels = impls.subset_indices(n_total, subset.get(name))
                spec = {
                    "impl": name,
                    "init_file": str(args.init_file),
                    "steps": args.steps,
                    "x": list(args.x),
                    "y": list(args.y),
                    "resolution": args.resolution,
                    "pixels": None if len(pixels) == n_total else pixels.tolist(),
                    "device": args.device,
                    "dtype": dtype,
                    "nonlinearity": "tanh",
                    "threads": args.threads,
                    "block_pixels": args.block_pixels,
                    "chunk": DEFAULT_CHUNK.get(name),
                }
                res, st = run_worker(spec, Path(tmp), f"{name}-{dtype}-{r}")
                res["pixel_indices"] = "all" if len(pixels) == n_total else f"{len(pixels)} spread evenly"
                results[name].append(res)
                stats[name] = st
                print(
                    f"[{dtype} repeat {r + 1}/{args.repeats}] {name:14s} "
                    f"{res['pixel_steps_per_s']:12.0f} pixel-steps/s "
                    f"({res['pixels']} px, {res['seconds']:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return results, stats


def stable_mask(args, problem, ours: dict, dtype: str) -> np.ndarray:
    """The chaos test: our kernel again on perturbed learning rates (not timed). On large
    grids only a spread subset is tested; untested pixels count as not stable."""
    n_total = args.resolution**2
    lrs = impls.grid_learning_rates({"resolution": args.resolution, "x": args.x, "y": args.y})
    tested = impls.subset_indices(n_total, args.stability_pixels)
    perturbed = [
        dispatch.train_pixels(
            problem,
            lp,
            nonlinearity="tanh",
            steps=args.steps,
            dtype=dtype,
            device=args.device,
            threads=args.threads,
        )
        for lp in perturbed_learning_rates(lrs[tested])
    ]
    stable = np.zeros(n_total, dtype=bool)
    stable[tested] = stable_pixels({k: v[tested] for k, v in ours.items()}, *perturbed)
    return stable


def implementation_row(
    reps: list[dict],
    flops: float,
    ours_rate: float,
    gemm: float,
    fma: float | None,
    theoretical: float | None,
) -> dict:
    best = max(reps, key=lambda x: x["pixel_steps_per_s"])
    rate = best["pixel_steps_per_s"]
    gflops = rate * flops / 1e9
    row = {
        "pixel_steps_per_s": rate,
        "pixel_steps_per_s_all_repeats": [x["pixel_steps_per_s"] for x in reps],
        "ratio_to_ours": rate / ours_rate,
        "pixels_timed": best["pixels"],
        "pixel_subset": best["pixel_indices"],
        "seconds": best["seconds"],
        "warmup_seconds": best["warmup_seconds"],
        "gflops": gflops,
        "fraction_of_measured_gemm_peak": gflops / gemm,
        "fraction_of_measured_fma_peak": gflops / fma if fma else None,
        "rss_peak_bytes": max(x["rss_peak_bytes"] for x in reps),
        "rss_peak_extra_bytes": max(x["rss_peak_extra_bytes"] for x in reps),
        "estimated_seconds_4096x4096x1000_frame": selftest.FRAME_PIXEL_STEPS / rate,
    }
    if theoretical is not None:
        row["fraction_of_theoretical_peak"] = gflops / theoretical
    if "device_peak_bytes" in best:
        row["device_peak_bytes"] = max(x["device_peak_bytes"] for x in reps)
    if "kernel" in best:
        row["kernel"] = best["kernel"]
    return row


def benchmark(args) -> dict:
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    problem = impls.load_problem({"init_file": str(args.init_file)})
    flops = flops_per_pixel_step(problem)
    n_total = args.resolution**2
    shape = (args.resolution, args.resolution)
    subset = dict(DEFAULT_SUBSET[device])
    for item in args.subset:
        name, k = item.split("=")
        subset[name] = None if k in ("all", "") else int(k)
    wanted = list(args.impl)
    skipped = {}
    for name in list(wanted):
        ok, why = impls.available(name, args.device)
        if not ok:
            skipped[name] = why
            wanted.remove(name)
    if "ours" not in wanted:
        raise SystemExit("the benchmark needs 'ours' (the reference of the agreement check)")

    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": machine.cpu_info(args.threads),
        "versions": machine.versions(),
        "loadavg_before": os.getloadavg(),
    }
    if device == "cuda":
        info["gpu"] = machine.gpu_info()
    else:  # before the implementations run, on all the threads they use
        info["cpu"]["measured_fma_peak"] = peaks.measured_fma_peak(args.threads)

    report = {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run"] + sys.argv[1:]),
        "machine": info,
        "problem": {
            "init_file": os.path.relpath(args.init_file, ROOT),
            "nonlinearity": "tanh",
            "width": 16,
            "N": int(problem.X.shape[0]),
            "batch": "full",
            "phase_space": "lr_vs_lr",
            "x": list(args.x),
            "y": list(args.y),
            "resolution": args.resolution,
            "steps": args.steps,
            "flops_per_pixel_step": flops,
        },
        "repeats": args.repeats,
        "skipped": skipped,
        "runs": {},
    }
    for dtype in args.dtype:
        gemm = peaks.measured_gemm_gflops(args.device, dtype, args.threads, n=args.gemm_n)
        fma = info["cpu"].get("measured_fma_peak", {}).get("gflops") if dtype == "float64" else None
        theoretical = (
            info["gpu"]["theoretical_float64_peak_gflops"]
            if device == "cuda" and dtype == "float64"
            else None
        )
        results, stats = time_implementations(args, wanted, subset, dtype)
        stable = stable_mask(args, problem, stats["ours"], dtype)
        ours_rate = max(x["pixel_steps_per_s"] for x in results["ours"])
        rows = {}
        for name, reps in results.items():
            rows[name] = implementation_row(reps, flops, ours_rate, gemm["gflops"], fma, theoretical)
            pixels = impls.subset_indices(n_total, subset.get(name))
            rows[name]["agreement_with_ours"] = check_agreement(
                stats["ours"], stats[name], pixels, shape, stable
            )
        ref_measure = convergence_measure(stats["ours"])
        report["runs"][dtype] = {
            "measured_gemm": gemm,
            "measured_fma_peak_gflops": fma,
            **({"theoretical_peak_gflops": theoretical} if device == "cuda" else {}),
            "converged_fraction": float((ref_measure < 0).mean()),
            "stable_fraction": float(stable.mean()),
            "away_from_boundary_fraction": float(away_from_boundary((ref_measure < 0).reshape(shape)).mean()),
            "implementations": rows,
        }
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["all_agree"] = all(
        row["agreement_with_ours"]["ok"]
        for run in report["runs"].values()
        for row in run["implementations"].values()
    )
    return report


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--dtype", nargs="+", default=["float64"], choices=["float64", "float32"])
    p.add_argument("--resolution", type=int, default=16, help="pixels per side (default 16)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--x", type=float, nargs=2, default=DEFAULT_WINDOW[0], help="log10 lr of W0 window")
    p.add_argument("--y", type=float, nargs=2, default=DEFAULT_WINDOW[1], help="log10 lr of W1 window")
    p.add_argument("--impl", nargs="+", default=list(impls.IMPLEMENTATIONS), choices=impls.IMPLEMENTATIONS)
    p.add_argument(
        "--subset",
        nargs="*",
        default=[],
        metavar="IMPL=K",
        help="time IMPL on K pixels spread over the grid ('all' for all)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--block-pixels", type=int, default=None, help="our kernel's block width")
    p.add_argument(
        "--stability-pixels",
        type=int,
        default=None,
        help="pixels of the chaos test (default all; 262144 on cuda)",
    )
    p.add_argument("--gemm-n", type=int, default=None, help="size of the peak-measuring GEMM")
    p.add_argument("--init-file", type=Path, default=DEFAULT_INIT)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stability_pixels is None and args.device.startswith("cuda"):
        args.stability_pixels = 262144
    report = benchmark(args)
    out = args.out or output.default_output(args, report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(output.table(report))
    print(f"written {out}; all implementations agree: {report['all_agree']}")
    return 0 if report["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
