"""The fused kernels' speed with each optimiser, relative to plain gradient descent.

A config must not get slower because it asks for momentum or Adam: the update is
O(weights) per step against O(N x weights) for the passes. Trains the benchmark problem
(``trainability.ops.selftest``: tanh, width 16, N = 272) on the same pixels with gd, momentum
and adam, alternating the order between repeats (the ratio is then robust to a machine
that others load), and keeps the best time of each.

    .venv/bin/python -m benchmarks.optimizers                  # C kernel: 8^2 pixels x 200 steps, 1 thread
    python -m benchmarks.optimizers --device cuda --resolution 256 --steps 1000    # Triton, on a GPU node

Writes benchmarks/results/optimizers-<cpu-model-threads | cuda-gpu>.json with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks import machine, output
from trainability.contract import optimizers
from trainability.kernels import c_cpu, dispatch
from trainability.ops import selftest
from trainability.results import files

ROOT = Path(__file__).resolve().parents[1]


def measure(resolution: int, steps: int, repeats: int, threads: int, device: str = "cpu") -> dict[str, float]:
    """Best seconds of each optimiser (its default hyperparameters) on the same pixels, with
    the device's fused kernel (the C kernel on CPU, Triton on CUDA)."""
    problem = selftest.load_problem()
    lrs = selftest.grid_learning_rates(resolution)
    best: dict[str, float] = {}
    names = list(optimizers.OPTIMIZERS)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            params = optimizers.pixel_parameters(name, {}, lrs.shape[0])
            began = time.perf_counter()
            dispatch.train_pixels(
                problem,
                lrs,
                None,
                nonlinearity=selftest.NONLINEARITY,
                steps=steps,
                device=device,
                threads=threads,
                kernel="fused",
                optimizer=name,
                optimizer_params=params,
            )
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - began)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=8, help="pixels per side (default 8)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (the C kernel) or cuda (the Triton kernel)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.device == "cpu" and c_cpu.load_library() is None:
        print("the fused C kernel is unavailable (no C compiler, or TRAINABILITY_NO_CPU_FUSED)")
        return 2
    info = {
        "hostname": platform.node(),
        "cpu": machine.cpu_info(args.threads),
        "versions": machine.versions(),
    }
    info["loadavg_before"] = os.getloadavg()
    best = measure(args.resolution, args.steps, args.repeats, args.threads, args.device)
    info["loadavg_after"] = os.getloadavg()
    pixel_steps = args.resolution**2 * args.steps
    report = {
        **output.header("trainability-optimizer-speed/1", "benchmarks.optimizers", argv, info),
        "problem": {
            "init_file": str(selftest.INIT_FILE.name),
            "pixels": args.resolution**2,
            "steps": args.steps,
        },
        "repeats": args.repeats,
        "optimizers": {
            name: {
                "seconds": seconds,
                "pixel_steps_per_s": pixel_steps / seconds,
                "speed_relative_to_gd": best["gd"] / seconds,
            }
            for name, seconds in best.items()
        },
    }
    cpu = info["cpu"]
    path = (
        args.output
        or ROOT / "benchmarks/results" / f"optimizers-cpu-{output.slug(cpu['model'])}-{args.threads}t.json"
    )
    files.write_json(path, report)
    for name, row in report["optimizers"].items():
        rate, ratio = row["pixel_steps_per_s"], row["speed_relative_to_gd"]
        print(f"{name:9s} {rate:10.0f} pixel-steps/s  {ratio:.3f} x gd")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
