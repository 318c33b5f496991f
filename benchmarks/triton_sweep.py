"""Sweep the fused Triton kernel's variants (knobs of ``trainability.kernels.triton_gpu``) on a GPU.

    PYTHONPATH=workflow:. python -m benchmarks.triton_sweep            # CUDA, ~3 min on an H200
    PYTHONPATH=workflow:. python -m benchmarks.triton_sweep --dry      # CPU, Triton's interpreter

The benchmark problem (author's init N = 272, tanh, width 16, full batch,
1000 steps, the lr_vs_lr window of ``benchmarks.run``). Per variant: the
first call compiles (timed apart, ``compile_s``); a run on ``--check-pixels``
pixels spread over the grid is compared with the default variant (bits and
``agreement.compare_pixels``) and with the torch kernel; then a timed run,
sized from the check run to last about ``--seconds``, gives pixel-steps/s and
the estimated seconds of a 4096^2 x 1000-step frame. Register counts come from
the loaded kernel. A variant that fails is recorded with its error. Writes
JSON (``--out``) and prints a table. Needs only torch, triton and numpy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path

if "--dry" in sys.argv[1:]:  # read by triton when the kernels are defined, at import
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from benchmarks import impls, machine  # noqa: E402
from benchmarks.output import slug  # noqa: E402
from trainability.contract.problem import as_problem
from trainability.kernels import triton_gpu
from trainability.kernels.agreement import compare_pixels, perturbed_learning_rates, same_bits, stable_pixels
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import train_pixels
from trainability.ops import selftest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "trainability-triton-sweep/1"
# (pixels, rows, warps, extra knobs) per dtype; the defaults first. Pruned by the sm_90 AOT
# register counts: variants that spill heavily (float64 16 pixels on <= 8 warps) are left out.
VARIANTS = {
    "float64": [
        (8, 16, 8, {}),  # the default: 2 chunks per loop iteration
        (8, 16, 8, {"unroll": 1}),
        (1, 16, 4, {"unroll": 1}),  # the old kernel's shape: one pixel per program
        (4, 16, 4, {}),  # 2 programs per SM
        (4, 16, 4, {"unroll": 1}),
        (8, 16, 16, {"unroll": 1}),
        (2, 16, 4, {"unroll": 1}),  # 3 programs per SM
        (4, 16, 8, {}),
        (8, 32, 8, {"unroll": 1}),
        (4, 32, 8, {"unroll": 1}),
        (8, 16, 8, {"tanh": "exp", "unroll": 1}),  # unroll 2 spills a little (AOT)
        (8, 16, 8, {"stages": 1}),
        (8, 16, 4, {"unroll": 1}),  # spills (AOT): for the record
        (1, 16, 4, {"dot": 0, "unroll": 1}),
    ],
    "float32": [
        (8, 16, 4, {}),
        (8, 16, 4, {"f32dot": "tf32x3"}),
        (8, 16, 8, {"f32dot": "tf32x3"}),
        (16, 16, 8, {"f32dot": "tf32x3"}),
        (4, 16, 4, {"f32dot": "tf32x3"}),
        (1, 16, 4, {}),
        (4, 16, 4, {}),
        (8, 16, 8, {}),
        (16, 16, 8, {}),
        (8, 32, 4, {}),
        (8, 16, 4, {"tanh": "exp"}),
        (4, 16, 4, {"dot": 0}),
    ],
}
# The dry run's last variant is invalid on purpose: a failure must be recorded, not fatal.
DRY_VARIANTS = {"float64": [(4, 16, 4, {}), (1, 16, 4, {})], "float32": [(4, 16, 4, {}), (4, 24, 4, {})]}
RTOL = {"float64": {}, "float32": {"rtol": 1e-4, "diverged_rtol": 1e-3}}  # compare_pixels criteria


def knobs_of(entry) -> dict:
    pixels, rows, warps, extra = entry
    return dict(pixels=pixels, rows=rows, warps=warps, **extra)


def run_variant(problem, lrs, steps, dtype, device, knobs, launch_info=None):
    run = Run(
        problem, lrs, nonlinearity="tanh", steps=steps, offset_mode="every_step", dtype=dtype, device=device
    )
    return triton_gpu.train(
        run,
        launch_info=launch_info,
        pixels=knobs["pixels"],
        rows=knobs["rows"],
        num_warps=knobs["warps"],
        num_stages=knobs.get("stages"),
        use_dot=knobs.get("dot"),
        tanh=knobs.get("tanh"),
        f32dot=knobs.get("f32dot"),
    )


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def sweep_dtype(args, dtype, problem, spec, device, deadline, rows, save):
    """Appends a row per variant to ``rows``, calling ``save()`` after each (a sweep cut short
    by its caller's time limit keeps what it measured)."""
    check_lrs = impls.grid_learning_rates(dict(spec, pixels=check_pixels(spec, args.check_pixels)))
    tkw = dict(nonlinearity="tanh", steps=args.steps, dtype=dtype, device=device, kernel="torch")
    ref = train_pixels(problem, check_lrs, **tkw)
    perturbed = [train_pixels(problem, lp, **tkw) for lp in perturbed_learning_rates(check_lrs)]
    checks = dict(ref=ref, stable=stable_pixels(ref, *perturbed), lrs=check_lrs, default=None)
    for entry in (DRY_VARIANTS if args.dry else VARIANTS)[dtype]:
        row = {"dtype": dtype, "knobs": knobs_of(entry)}
        rows.append(row)
        if time.perf_counter() > deadline:
            row["error"] = "skipped: --budget-s spent"
            continue
        try:
            row["knobs"] = knobs = triton_gpu.variant(dtype, **knobs_of(entry))
            row["identity"] = triton_gpu.build_identity(dtype, **knobs)
            row.update(measure(args, problem, spec, dtype, device, knobs, checks))
        except Exception as err:  # a failing variant is a result, not the end of the sweep
            row["error"] = f"{type(err).__name__}: {err}"[:2000]
            row["traceback"] = traceback.format_exc()[-4000:]
        save()


def measure(args, problem, spec, dtype, device, knobs, checks) -> dict:
    """Compile, check against the default variant (the first to succeed) and torch, then time."""
    row, info, check_lrs = {}, {}, checks["lrs"]
    _, row["compile_s"] = timed(lambda: run_variant(problem, check_lrs[:1], 1, dtype, device, knobs, info))
    if info.get("compiled") is not None and not args.dry:
        row.update(triton_gpu.triton_source.resource_usage(info["compiled"]))
    stats, check_s = timed(lambda: run_variant(problem, check_lrs, args.steps, dtype, device, knobs))
    checks["default"] = checks["default"] or {"stats": stats, "knobs": knobs}
    default = checks["default"]["stats"]
    row["bits_equal_default_fraction"] = float(same_bits(stats, default).mean())
    row["vs_default"] = dict(compare_pixels(default, stats, checks["stable"], **RTOL[dtype]))
    row["vs_default"]["default_knobs"] = checks["default"]["knobs"]
    row["vs_torch"] = compare_pixels(checks["ref"], stats, checks["stable"], **RTOL[dtype])
    rate = len(check_lrs) * args.steps / check_s
    n = int(min(args.max_pixels, max(len(check_lrs), rate * args.seconds / args.steps)))
    lrs = impls.grid_learning_rates(dict(spec, pixels=check_pixels(spec, n)))
    _, seconds = timed(lambda: run_variant(problem, lrs, args.steps, dtype, device, knobs))
    row.update(timed_pixels=len(lrs), timed_s=seconds, pixel_steps_per_s=len(lrs) * args.steps / seconds)
    row["estimated_seconds_4096x4096x1000_frame"] = selftest.FRAME_PIXEL_STEPS / row["pixel_steps_per_s"]
    return row


def check_pixels(spec, n):
    """``n`` grid indices spread evenly over the whole grid (all when n >= the grid)."""
    return impls.subset_indices(spec["resolution"] ** 2, n).tolist()


def table(rows) -> str:
    cols = ("dtype", "pixels", "rows", "warps", "stages", "dot", "tanh", "f32dot")
    head = f"{'dtype':8} {'pix':>3} {'rows':>4} {'wrp':>3} {'stg':>3} {'dot':>3} {'tanh':9} {'f32dot':6} "
    head += f"{'regs':>4} {'spill':>5} {'Mpx-st/s':>9} {'frame s':>8} {'bits=def':>8} {'torch':>5}"
    lines = [head]
    for r in rows:
        k = dict(r["knobs"], dtype=r["dtype"])
        line = " ".join(
            f"{k.get(c, '-')!s:{w}}" for c, w in zip(cols, (8, ">3", ">4", ">3", ">3", ">3", 9, 6))
        )
        line += f" {r.get('n_regs', '-')!s:>4} {r.get('n_spills', '-')!s:>5} "
        if r.get("pixel_steps_per_s") is None:
            line += f" {r.get('error', 'no result')[:70]}"
        else:
            line += (
                f"{r['pixel_steps_per_s'] / 1e6:>9.2f} {r['estimated_seconds_4096x4096x1000_frame']:>8.0f} "
            )
            line += f"{r['bits_equal_default_fraction']:>8.3f} {'ok' if r['vs_torch']['ok'] else 'FAIL':>5}"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="CPU, Triton's interpreter, a tiny problem")
    parser.add_argument("--out", type=Path, help="JSON (default benchmarks/results/triton-sweep-<gpu>.json)")
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--steps", type=int, help="training steps (default 1000; --dry 3)")
    parser.add_argument("--resolution", type=int, help="grid side of the window (default 1024; --dry 4)")
    parser.add_argument("--check-pixels", type=int, help="pixels compared (default 1024; --dry 4)")
    parser.add_argument("--seconds", type=float, default=1.5, help="target length of a timed run")
    parser.add_argument("--max-pixels", type=int, default=1 << 20, help="most pixels of a timed run")
    parser.add_argument("--budget-s", type=float, default=110.0, help="variants after this are skipped")
    parser.add_argument(
        "--init", type=Path, default=selftest.INIT_FILE, help="initial weights and data (npz)"
    )
    args = parser.parse_args(argv)
    small = dict(steps=3, resolution=4, check_pixels=4) if args.dry else {}
    for name, full in (("steps", 1000), ("resolution", 1024), ("check_pixels", 1024)):
        if getattr(args, name) is None:
            setattr(args, name, small.get(name, full))
    if args.dry:
        device, args.max_pixels = "cpu", args.check_pixels
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        parser.error("no CUDA device: run on a GPU, or --dry for the CPU check")
    spec = dict(
        init_file=str(args.init), x=selftest.WINDOW_X, y=selftest.WINDOW_Y, resolution=args.resolution
    )
    problem = impls.load_problem(spec)
    if args.dry:  # 40 rows of the author's data (a pair of chunks and a partial one): interpreter
        problem = as_problem(problem.weights, problem.X[:40], problem.Y[:40])
    gpu = machine.gpu_info() if device == "cuda" else None
    name = f"triton-sweep-{slug(gpu['model'] if gpu else 'cpu')}.json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows = []
    report = {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "dry": args.dry,
        "complete": False,
        "problem": {**spec, "steps": args.steps, "N": int(problem.X.shape[0]), "nonlinearity": "tanh"},
        "check_pixels": args.check_pixels,
        "defaults": triton_gpu.DEFAULTS,
        "machine": {"gpu": gpu, "versions": machine.versions()},
        "variants": rows,
    }

    def save():
        report["wall_s"] = time.perf_counter() - started
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
        tmp.replace(out)

    for i, dtype in enumerate(args.dtypes):  # each dtype gets its share of the budget
        deadline = started + args.budget_s * (i + 1) / len(args.dtypes)
        sweep_dtype(args, dtype, problem, spec, device, deadline, rows, save)
    report["complete"] = True
    save()
    print(table(rows))
    print(f"wrote {out} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
