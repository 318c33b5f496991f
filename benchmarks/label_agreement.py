"""How far results of different arithmetic agree: labels and bits, in a chaotic and a calm window.

Trains the same pixels with several (kernel, device) pairs through the workflow's own path
(``trainability.training.train_points``) and compares each with the first pair: the fraction
of pixels with the same converged/diverged label, and with bit-identical statistics.

Windows: two experiments of ``config/config.yaml`` at a coarser resolution — ``paraminit``
(the parameter-initialisation window, chaotic at every scale: rounding differences flip
labels) and ``tanh`` (full batch: labels robust to rounding).

    .venv/bin/python -m benchmarks.label_agreement                 # CPU: fused C vs batched torch
    python -m benchmarks.label_agreement --pairs fused:cpu fused:cuda torch:cuda   # on a GPU node

Writes benchmarks/results/agreement-<pairs>.json with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import machine, output
from trainability import config, training
from trainability.boundary import scoring
from trainability.contract import grid, problem
from trainability.kernels import dispatch
from trainability.kernels.agreement import same_bits

WINDOWS = ("paraminit", "tanh")


def train_window(exp: dict, resolution: int, kernel: str, device: str) -> dict[str, np.ndarray]:
    settings = config.as_builtin(config.training_params(exp))
    settings["resolution"] = resolution
    shared = problem.build_problem(settings["model"], settings["data"], settings["training"])
    ps = exp["phase_space"]
    x, y = grid.pixel_coordinates((ps["x"], ps["y"]), resolution, 0, resolution**2)
    device = dispatch.resolve_device(device)
    return training.train_points(shared, settings, x, y, device=device, kernel=kernel)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", nargs="+", default=["fused:cpu", "torch:cpu"], help="kernel:device, first = reference"
    )
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument(
        "--steps", type=int, help="training steps (default: the config's; fewer for a quick check)"
    )
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    experiments = config.validate_config(config.load_config(args.config))
    pairs = [tuple(p.split(":", 1)) for p in args.pairs]
    windows = {}
    for name in WINDOWS:
        exp = experiments[name]
        if args.steps:
            exp["training"]["steps"] = args.steps
        runs = {}
        for kernel, device in pairs:
            began = time.monotonic()
            stats = train_window(exp, args.resolution, kernel, device)
            record = dispatch.arithmetic_identity(kernel, device)
            runs[f"{kernel}:{device}"] = (stats, record, time.monotonic() - began)
        (ref_name, (ref, _, _)), *others = runs.items()
        ref_labels = scoring.trainable("convergence", scoring.convergence_measure(ref))
        rows = {}
        for label, (stats, record, seconds) in runs.items():
            labels = scoring.trainable("convergence", scoring.convergence_measure(stats))
            rows[label] = {
                "arithmetic": record,
                "seconds": round(seconds, 2),
                "trainable_fraction": float(labels.mean()),
                "label_agreement_with_" + ref_name: float((labels == ref_labels).mean()),
                "bit_identical_fraction_with_" + ref_name: float(same_bits(stats, ref).mean()),
            }
        windows[name] = {"title": exp["title"], "steps": exp["training"]["steps"], "runs": rows}
        for label, row in rows.items():
            print(
                f"{name:10s} {label:12s} labels {row['label_agreement_with_' + ref_name]:7.2%} "
                f"bits {row['bit_identical_fraction_with_' + ref_name]:7.2%}  ({row['seconds']} s)"
            )
    report = {
        "command": "python -m benchmarks.label_agreement " + " ".join(sys.argv[1:] if argv is None else argv),
        "resolution": args.resolution,
        "windows": windows,
        "machine": {
            "cpu": machine.cpu_info(torch.get_num_threads()),
            "gpu": machine.gpu_info() if torch.cuda.is_available() else None,
        },
        "versions": machine.versions(),
    }
    path = args.output or Path("benchmarks/results") / f"agreement-{output.slug('-'.join(args.pairs))}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
