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
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: python benchmarks/run.py
    sys.path.insert(0, str(ROOT))
DEFAULT_INIT = ROOT / "resources" / "author_init" / "author_init_N272.npz"
# A window straddling the tanh full-batch boundary (log10 learning rates of
# W0 (x) and W1 (y)); wide enough to hold both regions and the boundary.
DEFAULT_WINDOW = ((0.0, 1.5), (1.5, 2.7))
LABEL_AGREEMENT = 0.995  # minimum fraction of pixels with the same converged/diverged label
MEASURE_RTOL = 1e-9  # maximum relative difference of the measure away from the boundary
DIVERGED_RTOL = 1e-6  # the same for diverged pixels (see check_agreement)
PERTURBATION = 1e-13  # relative change of the learning rates in the chaos test
STABLE_RTOL = 1e-10  # a pixel is stable when that change moves its measure by no more

# Pixels per implementation when not all: the slow ones are timed on a subset.
DEFAULT_SUBSET = {
    "cpu": {"autograd_loop": 4},
    "cuda": {"autograd_loop": 2, "ours_torch": 262144, "torch_vmap": 65536, "jax_author": 65536},
}
# The author's train() splits the grid into batches of 50000 pixels.
DEFAULT_CHUNK = {"torch_vmap": 50000, "jax_author": 50000}


# ------------------------------------------------------------------ agreement
def away_from_boundary(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood (clipped at the grid's edge) all share their label."""
    R0, R1 = labels.shape
    same = np.ones_like(labels, dtype=bool)
    padded = np.pad(labels, 1, mode="edge")
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            same &= padded[1 + di : 1 + di + R0, 1 + dj : 1 + dj + R1] == labels
    return same


def check_agreement(reference: dict, candidate: dict, pixels: np.ndarray, shape: tuple[int, int],
                    stable: np.ndarray | None = None,
                    label_agreement: float = LABEL_AGREEMENT, rtol: float = MEASURE_RTOL,
                    diverged_rtol: float = DIVERGED_RTOL) -> dict:
    """Compare one implementation's statistics with the reference's.

    ``reference`` covers the whole grid (row-major, ``shape``); ``candidate``
    covers the grid pixels ``pixels``. Passes when

    * the converged/diverged label (sign of the paper's measure M) agrees on
      >= ``label_agreement`` of the pixels, and, on the pixels away from the
      boundary (3x3 neighbourhood of one label in the reference) that are also
      ``stable`` (grid-shaped boolean, None = all; not chaotic, see ``stable_pixels``):
    * converged pixels: |M - M_ref| <= rtol |M_ref|;
    * diverged pixels: the same first step with u >= 1e6 and
      |M - M_ref| <= diverged_rtol |M_ref|. (After a diverged run's loss
      passes 1e6 v_0 it keeps growing, chaotically, until it overflows; the
      step at which it becomes inf moves by a few steps between any two
      implementations, and each non-finite step adds 1/(1e6/v_0) instead of
      1e-6 to M: differences of ~1e-7 relative, in quanta.)
    """
    from trainability.scoring import convergence_measure

    m_ref_grid = convergence_measure(reference).reshape(shape)
    pixels = np.asarray(pixels, dtype=np.int64)
    m_ref = m_ref_grid.ravel()[pixels]
    m = convergence_measure(candidate)
    if m.shape != m_ref.shape:
        raise ValueError(f"candidate has {m.shape} pixels, expected {m_ref.shape}")
    same_label = (m < 0) == (m_ref < 0)
    away = away_from_boundary(m_ref_grid < 0).ravel()[pixels]
    if stable is not None:
        away &= np.asarray(stable, dtype=bool).ravel()[pixels]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(m - m_ref) / np.abs(m_ref)
    rel = np.where(np.isnan(rel) & (m == m_ref), 0.0, rel)
    rel = np.where(np.isnan(rel), np.inf, rel)
    conv, div = away & (m_ref < 0), away & (m_ref >= 0)
    same_onset = np.asarray(candidate["diverged_step"]) == np.asarray(reference["diverged_step"])[pixels]
    fraction = float(same_label.mean()) if len(m) else 1.0
    max_conv = float(rel[conv].max()) if conv.any() else 0.0
    max_div = float(rel[div].max()) if div.any() else 0.0
    result = {
        "pixels": int(len(m)),
        "label_agreement": fraction,
        "label_disagreements": int((~same_label).sum()),
        "compared_converged_pixels": int(conv.sum()),
        "max_rel_diff_converged": max_conv,
        "compared_diverged_pixels": int(div.sum()),
        "max_rel_diff_diverged": max_div,
        "diverged_onset_mismatches": int((div & ~same_onset).sum()),
        "median_rel_diff_all": float(np.median(rel)) if len(rel) else 0.0,
        "criteria": {"label_agreement_min": label_agreement, "measure_rtol_converged": rtol,
                     "measure_rtol_diverged": diverged_rtol, "diverged_onset": "equal"},
    }
    result["ok"] = bool(fraction >= label_agreement and max_conv <= rtol and max_div <= diverged_rtol
                        and result["diverged_onset_mismatches"] == 0)
    return result


def stable_pixels(reference: dict, *perturbed: dict, tol: float = STABLE_RTOL) -> np.ndarray:
    """Pixels whose measure moves by <= tol (relative) in every ``perturbed`` run
    (our kernel with the learning rate of W0, then that of W1, scaled by
    1 +- PERTURBATION): their trajectories are not chaotic, so implementations
    that differ only in rounding must agree closely there. (Scaling both rates
    together is a weakly coupled direction and misses some chaotic pixels.)"""
    from trainability.scoring import convergence_measure

    m = convergence_measure(reference)
    ok = np.ones(m.shape, dtype=bool)
    for run in perturbed:
        mp = convergence_measure(run)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= (np.abs(mp - m) <= tol * np.abs(m)) & ((m < 0) == (mp < 0))
    return ok


# -------------------------------------------------------------- machine facts
def _lscpu() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def cpu_info(threads: int) -> dict:
    info = _lscpu()
    flags = set(info.get("Flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    vendor = info.get("Vendor ID", "")
    family = int(info.get("CPU family", "0") or 0)
    # float64 lanes per FMA instruction the core executes per cycle per unit:
    # AVX-512 on AMD Zen 4/5 (family 25/26) runs on 256-bit units; Intel
    # server cores with AVX-512 have 512-bit units; otherwise AVX2+FMA 256 bits.
    if "avx512f" in flags and not (vendor == "AuthenticAMD" and family in (25, 26)):
        lanes, isa = 8, "avx512 (512-bit FMA units)"
    elif "fma" in flags and "avx2" in flags:
        lanes, isa = 4, "avx2/fma (256-bit FMA units)" + (" [avx512 on 256-bit datapath]" if "avx512f" in flags else "")
    elif "sse2" in flags:
        lanes, isa = 2, "sse2"
    else:
        lanes, isa = 1, "scalar"
    fma_units = 2  # two FMA pipes per core on all recent x86 server cores (an assumption, see README)
    mhz, clock_source = None, None
    if info.get("CPU max MHz"):
        mhz, clock_source = float(info["CPU max MHz"]), "lscpu CPU max MHz"
    elif info.get("BogoMIPS"):
        mhz, clock_source = float(info["BogoMIPS"]) / 2, "lscpu BogoMIPS / 2 (= TSC clock on x86)"
    peak = None
    if mhz:
        used = min(cores, threads)
        peak = used * fma_units * lanes * 2 * mhz * 1e6 / 1e9
    return {
        "model": info.get("Model name", platform.processor()),
        "vendor": vendor,
        "family": family,
        "cores_available": cores,
        "threads_used": threads,
        "isa": isa,
        "float64_lanes": lanes,
        "fma_units_per_core": fma_units,
        "clock_mhz": mhz,
        "clock_source": clock_source,
        "theoretical_float64_peak_gflops": peak,
        "peak_formula": "cores_used x FMA units x float64 lanes x 2 (FMA) x clock",
        "l2_cache": info.get("L2 cache"),
        "l3_cache": info.get("L3 cache"),
    }


def gpu_info() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    cc = (props.major, props.minor)
    # float64 FMA units per SM (CUDA programming guide, arithmetic throughput table).
    fp64_per_sm = {(6, 0): 32, (7, 0): 32, (8, 0): 32, (9, 0): 64, (10, 0): 64}.get(cc, 2)
    mhz = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits",
                              "-i", "0"], capture_output=True, text=True, check=True).stdout
        mhz = float(out.strip().splitlines()[0])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        pass
    peak = props.multi_processor_count * fp64_per_sm * 2 * mhz * 1e6 / 1e9 if mhz else None
    return {
        "model": props.name,
        "compute_capability": f"{cc[0]}.{cc[1]}",
        "sms": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "fp64_units_per_sm": fp64_per_sm,
        "clock_mhz": mhz,
        "clock_source": "nvidia-smi clocks.max.sm" if mhz else None,
        "theoretical_float64_peak_gflops": peak,
        "peak_formula": "SMs x FP64 FMA units per SM x 2 x max SM clock (CUDA cores, not tensor cores)",
    }


def measured_gemm_gflops(device: str, dtype: str, threads: int, repeats: int = 3, n: int | None = None) -> dict:
    """A large GEMM's rate: a practical peak (float64 DGEMM on CPU uses all FMA units)."""
    import torch

    torch.set_num_threads(threads)
    if n is None:
        n = 8192 if device.startswith("cuda") else 2048
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    best = 0.0
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return {"gflops": best, "n": n, "dtype": dtype, "how": f"torch.mm {n}x{n}, best of {repeats + 1}"}


def versions() -> dict:
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("jax", "jaxlib", "triton"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    out["glibc"] = "-".join(platform.libc_ver())
    return out


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ------------------------------------------------------------------ running
def run_worker(spec: dict, workdir: Path, tag: str) -> tuple[dict, dict]:
    spec_path = workdir / f"{tag}.spec.json"
    spec_path.write_text(json.dumps(spec))
    prefix = str(workdir / tag)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if spec["device"] == "cpu":
        env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(spec_path), prefix],
                          capture_output=True, text=True, env=env, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['impl']} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    with open(prefix + ".json") as f:
        result = json.load(f)
    with np.load(prefix + ".npz") as npz:
        stats = {k: npz[k] for k in npz.files}
    return result, stats


def subset_indices(n_total: int, k: int | None) -> np.ndarray:
    """k pixels spread evenly over the grid (all when k is None or >= n_total)."""
    if k is None or k >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, k).round().astype(np.int64))


def benchmark(args) -> dict:
    from benchmarks import impls
    from trainability.training import flops_per_pixel_step

    device = "cuda" if args.device.startswith("cuda") else "cpu"
    problem = impls.load_problem({"init_file": str(args.init_file)})
    flops = flops_per_pixel_step(problem)
    n_total = args.resolution**2
    subset = dict(DEFAULT_SUBSET[device])
    for item in args.subset:
        name, k = item.split("=")
        subset[name] = None if k in ("all", "") else int(k)
    wanted = [i for i in args.impl]
    skipped = {}
    for name in list(wanted):
        ok, why = impls.available(name, args.device)
        if not ok:
            skipped[name] = why
            wanted.remove(name)
    if "ours" not in wanted:
        raise SystemExit("the benchmark needs 'ours' (the reference of the agreement check)")

    machine = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_info(args.threads),
        "versions": versions(),
        "loadavg_before": os.getloadavg(),
    }
    if device == "cuda":
        machine["gpu"] = gpu_info()

    report = {
        "schema": "trainability-benchmark/1",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run"] + sys.argv[1:]),
        "machine": machine,
        "problem": {
            "init_file": os.path.relpath(args.init_file, ROOT),
            "nonlinearity": "tanh", "width": 16, "N": int(problem.X.shape[0]), "batch": "full",
            "phase_space": "lr_vs_lr", "x": list(args.x), "y": list(args.y),
            "resolution": args.resolution, "steps": args.steps,
            "flops_per_pixel_step": flops,
        },
        "repeats": args.repeats,
        "skipped": skipped,
        "runs": {},
    }
    peak_kind = "gpu" if device == "cuda" else "cpu"
    for dtype in args.dtype:
        gemm = measured_gemm_gflops(args.device, dtype, args.threads, n=args.gemm_n)
        theo = machine[peak_kind]["theoretical_float64_peak_gflops"] if dtype == "float64" else None
        results: dict[str, list] = {name: [] for name in wanted}
        stats: dict[str, dict] = {}
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            for r in range(args.repeats):
                for name in wanted:
                    pixels = subset_indices(n_total, subset.get(name))
                    spec = {
                        "impl": name, "init_file": str(args.init_file), "steps": args.steps,
                        "x": list(args.x), "y": list(args.y), "resolution": args.resolution,
                        "pixels": None if len(pixels) == n_total else pixels.tolist(),
                        "device": args.device, "dtype": dtype, "nonlinearity": "tanh",
                        "threads": args.threads, "block_pixels": args.block_pixels,
                        "chunk": DEFAULT_CHUNK.get(name),
                    }
                    res, st = run_worker(spec, Path(tmp), f"{name}-{dtype}-{r}")
                    res["pixel_indices"] = "all" if len(pixels) == n_total else f"{len(pixels)} spread evenly"
                    results[name].append(res)
                    stats[name] = st
                    print(f"[{dtype} repeat {r + 1}/{args.repeats}] {name:14s} "
                          f"{res['pixel_steps_per_s']:12.0f} pixel-steps/s "
                          f"({res['pixels']} px, {res['seconds']:.1f} s)", file=sys.stderr, flush=True)
        # Chaos test: our kernel again with perturbed learning rates (not timed).
        from trainability.training import train_pixels

        # On large grids only a spread subset is tested; untested pixels count as not stable.
        lrs = impls.grid_learning_rates({"resolution": args.resolution, "x": args.x, "y": args.y})
        tested = subset_indices(n_total, args.stability_pixels)
        perturbed = []
        for layer, factor in ((0, 1 + PERTURBATION), (1, 1 - PERTURBATION)):
            lp = lrs[tested].copy()
            lp[:, layer] *= factor
            perturbed.append(train_pixels(problem, lp, nonlinearity="tanh", steps=args.steps,
                                          dtype=dtype, device=args.device))
        stable = np.zeros(n_total, dtype=bool)
        stable[tested] = stable_pixels({k: v[tested] for k, v in stats["ours"].items()}, *perturbed)
        rows = {}
        ours_rate = max(x["pixel_steps_per_s"] for x in results["ours"])
        shape = (args.resolution, args.resolution)
        for name, reps in results.items():
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
                "fraction_of_measured_gemm_peak": gflops / gemm["gflops"],
                "fraction_of_theoretical_peak": gflops / theo if theo else None,
                "rss_peak_bytes": max(x["rss_peak_bytes"] for x in reps),
                "rss_peak_extra_bytes": max(x["rss_peak_extra_bytes"] for x in reps),
                "estimated_seconds_4096x4096x1000_frame": 4096**2 * 1000 / rate,
            }
            if "device_peak_bytes" in best:
                row["device_peak_bytes"] = max(x["device_peak_bytes"] for x in reps)
            if "kernel" in best:
                row["kernel"] = best["kernel"]
            pixels = subset_indices(n_total, subset.get(name))
            row["agreement_with_ours"] = check_agreement(stats["ours"], stats[name], pixels, shape, stable)
            rows[name] = row
        ref_measure = None
        from trainability.scoring import convergence_measure

        ref_measure = convergence_measure(stats["ours"])
        report["runs"][dtype] = {
            "measured_gemm": gemm,
            "theoretical_peak_gflops": theo,
            "converged_fraction": float((ref_measure < 0).mean()),
            "stable_fraction": float(stable.mean()),
            "away_from_boundary_fraction": float(away_from_boundary((ref_measure < 0).reshape(shape)).mean()),
            "implementations": rows,
        }
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["all_agree"] = all(row["agreement_with_ours"]["ok"]
                              for run in report["runs"].values() for row in run["implementations"].values())
    return report


def table(report: dict) -> str:
    lines = []
    for dtype, run in report["runs"].items():
        lines.append(f"{dtype}: measured GEMM {run['measured_gemm']['gflops']:.1f} GFLOP/s, theoretical peak "
                     f"{run['theoretical_peak_gflops'] or float('nan'):.1f} GFLOP/s, "
                     f"{run['converged_fraction']:.0%} of pixels converged, {run['stable_fraction']:.0%} stable "
                     f"(not chaotic), {run['away_from_boundary_fraction']:.0%} away from the boundary")
        lines.append(f"{'implementation':15s} {'pixel-steps/s':>14s} {'ratio':>8s} {'GFLOP/s':>8s} "
                     f"{'%GEMM':>6s} {'%peak':>6s} {'peak RSS':>9s} {'+RSS':>9s} {'pixels':>7s} agree")
        for name, row in run["implementations"].items():
            theo = row["fraction_of_theoretical_peak"]
            lines.append(
                f"{name:15s} {row['pixel_steps_per_s']:14.0f} {row['ratio_to_ours']:8.3f} {row['gflops']:8.2f} "
                f"{100 * row['fraction_of_measured_gemm_peak']:5.1f}% "
                f"{'' if theo is None else f'{100 * theo:5.1f}%':>6s} "
                f"{row['rss_peak_bytes'] / 2**20:7.0f}Mi {row['rss_peak_extra_bytes'] / 2**20:7.0f}Mi "
                f"{row['pixels_timed']:7d} {'yes' if row['agreement_with_ours']['ok'] else 'NO'}")
    return "\n".join(lines)


def default_output(args, report) -> Path:
    if args.device.startswith("cuda"):
        name = "cuda-" + slug(report["machine"]["gpu"]["model"])
    else:
        cpu = report["machine"]["cpu"]
        name = f"cpu-{slug(cpu['model'])}-{cpu['threads_used']}t"
    return ROOT / "benchmarks" / "results" / f"{name}.json"


def parse_args(argv=None):
    from benchmarks.impls import IMPLEMENTATIONS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--dtype", nargs="+", default=["float64"], choices=["float64", "float32"])
    p.add_argument("--resolution", type=int, default=16, help="pixels per side (default 16)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--x", type=float, nargs=2, default=DEFAULT_WINDOW[0], help="log10 lr of W0 window")
    p.add_argument("--y", type=float, nargs=2, default=DEFAULT_WINDOW[1], help="log10 lr of W1 window")
    p.add_argument("--impl", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    p.add_argument("--subset", nargs="*", default=[], metavar="IMPL=K",
                   help="time IMPL on K pixels spread over the grid ('all' for all)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--block-pixels", type=int, default=None, help="our kernel's block width")
    p.add_argument("--stability-pixels", type=int, default=None,
                   help="pixels of the chaos test (default all; 262144 on cuda)")
    p.add_argument("--gemm-n", type=int, default=None, help="size of the peak-measuring GEMM")
    p.add_argument("--init-file", type=Path, default=DEFAULT_INIT)
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.stability_pixels is None and args.device.startswith("cuda"):
        args.stability_pixels = 262144
    report = benchmark(args)
    out = args.out or default_output(args, report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))
    print(f"written {out}; all implementations agree: {report['all_agree']}")
    return 0 if report["all_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
