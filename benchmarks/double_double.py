"""The double-double kernel's speed (``training.dtype: float64x2``) against the float64 one.

Trains the same pixels of the same problem with the fused C kernel in float64
(``fused_cpu.c``) and in double-double (``fused_cpu_dd.c``), alternating the order between
repeats, and keeps the best time of each: the author's problems (tanh N = 16, identity
N = 16, tanh N = 1; width 16) on the benchmark window's grid of learning rates
(``trainability.ops.selftest.grid_learning_rates``).

    .venv/bin/python -m benchmarks.double_double                # 8^2 pixels x 200 steps, 1 thread
    .venv/bin/python -m benchmarks.double_double --threads 2 --resolution 16

Writes benchmarks/results/double-double-<cpu-model>-<threads>t.json with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import machine, output
from trainability.kernels import c_cpu, c_cpu_dd
from trainability.kernels.backend import Run
from trainability.ops import selftest
from trainability.results import files

ROOT = Path(__file__).resolve().parents[1]
CASES = (("tanh-N16", "tanh", 16), ("identity-N16", "identity", 16), ("tanh-N1", "tanh", 1))
DTYPES = ("float64", "float64x2")


def measure(resolution: int, steps: int, repeats: int, threads: int) -> dict[str, dict[str, float]]:
    """Best seconds of each dtype on each case (the same pixels and steps)."""
    lrs = selftest.grid_learning_rates(resolution)
    best: dict[str, dict[str, float]] = {}
    for case, nonlinearity, n in CASES:
        problem = selftest.load_problem(selftest.INIT_FILE.parent / f"author_init_N{n}.npz")
        best[case] = {}
        for repeat in range(repeats):
            for dtype in DTYPES if repeat % 2 == 0 else DTYPES[::-1]:
                run = Run(
                    problem, lrs, None, nonlinearity=nonlinearity, steps=steps, dtype=dtype, threads=threads
                )
                began = time.perf_counter()
                c_cpu.train(run)
                best[case][dtype] = min(best[case].get(dtype, float("inf")), time.perf_counter() - began)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=8, help="pixels per side (default 8)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if c_cpu.load_library() is None or c_cpu_dd.load_library() is None:
        print("a fused C kernel is unavailable (no C compiler, or TRAINABILITY_NO_CPU_FUSED)")
        return 2
    info = {
        "hostname": platform.node(),
        "cpu": machine.cpu_info(args.threads),
        "versions": machine.versions(),
    }
    info["loadavg_before"] = os.getloadavg()
    best = measure(args.resolution, args.steps, args.repeats, args.threads)
    info["loadavg_after"] = os.getloadavg()
    pixel_steps = args.resolution**2 * args.steps
    report = {
        **output.header("trainability-double-double-speed/1", "benchmarks.double_double", argv, info),
        "build_classes": {"float64": c_cpu.BUILD_CLASS, "float64x2": c_cpu_dd.BUILD_CLASS},
        "problem": {
            "window": {"log10_lr_W0": selftest.WINDOW_X, "log10_lr_W1": selftest.WINDOW_Y},
            "pixels": args.resolution**2,
            "steps": args.steps,
        },
        "repeats": args.repeats,
        "cases": {
            case: {
                "init_file": f"author_init_N{n}.npz",
                "nonlinearity": nonlinearity,
                **{
                    dtype: {
                        "seconds": best[case][dtype],
                        "pixel_steps_per_s": pixel_steps / best[case][dtype],
                    }
                    for dtype in DTYPES
                },
                "time_factor_dd_over_float64": best[case]["float64x2"] / best[case]["float64"],
            }
            for case, nonlinearity, n in CASES
        },
    }
    cpu = info["cpu"]
    path = (
        args.output
        or ROOT / "benchmarks/results" / f"double-double-{output.slug(cpu['model'])}-{args.threads}t.json"
    )
    files.write_json(path, report)
    print(f"{'case':13s} {'float64 px-steps/s':>19s} {'float64x2 px-steps/s':>21s} {'time dd/f64':>12s}")
    for case, row in report["cases"].items():
        f64, dd = row["float64"]["pixel_steps_per_s"], row["float64x2"]["pixel_steps_per_s"]
        print(f"{case:13s} {f64:19.0f} {dd:21.0f} {row['time_factor_dd_over_float64']:12.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
