"""The automatic centre search of a config's zoom sequences, run on its own: where each
condition's search goes, how rough the boundary is on its way down, and what it costs.

Runs ``trainability.boundary.centre.find_centre`` for every experiment of the config with
``centre: auto``, with the experiment's own training settings, window, factor and depth
(as the workflow's ``find_centre`` rule would), on this machine's CPU kernel, and records
the chosen path's probes (level, depth in decades, edge pixels, roughness), the centre,
the pixels trained and the seconds. ``--pilot`` overrides ``zoom.pilot_resolution``
(e.g. to run config/paper.yaml's search, meant for GPUs, on a CPU in hours, not days).

    .venv/bin/python -m benchmarks.centre_search config/paper.yaml --pilot 24

Writes benchmarks/results/centre-<config>-<cpu-model>-<threads>t.json.
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
from trainability import config as tconfig
from trainability import training
from trainability.boundary import centre
from trainability.contract import grid
from trainability.results import files

ROOT = Path(__file__).resolve().parents[1]


def search(name: str, exp: dict, pilot: int | None, device: torch.device) -> dict:
    """One experiment's search, as the find_centre rule runs it, and what it saw."""
    settings = tconfig.as_builtin(tconfig.training_params(exp))
    zoom, ps = exp["zoom"], exp["phase_space"]
    pilot = pilot or zoom["pilot_resolution"]
    depth = max(zoom["max_frames"], 1)
    converged, backend = training.converged_function(settings, device)
    kernel = training.kernel_name(backend)
    began = time.monotonic()
    found = centre.find_centre(converged, (ps["x"], ps["y"]), zoom["factor"], depth, pilot)
    seconds = time.monotonic() - began
    frames_pixels = depth * exp["grid"]["resolution"] ** 2
    return {
        "experiment": name,
        "title": exp["title"],
        "kernel": kernel,
        "pilot": pilot,
        "depth_levels": depth,
        "centre": list(found.centre),
        "candidates": found.candidates,
        "pixels_trained": found.pixels_trained,
        "fraction_of_frames_pixels": found.pixels_trained / frames_pixels,
        "seconds": seconds,
        "path": [
            {
                "level": level.frame,
                "decades": grid.depth_decades(zoom["factor"], level.frame),
                "edges": level.edges,
                "roughness": level.roughness,
            }
            for level in found.levels
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="a config file (its base: files are read too)")
    parser.add_argument("--pilot", type=int, help="pilot frames' side (default: each zoom.pilot_resolution)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--only", nargs="*", help="these experiments only")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # configs name their files relative to the repository
    torch.set_num_threads(args.threads)
    raw = tconfig.layered_config(tconfig.load_config(args.config), ROOT)
    experiments = tconfig.validate_config(raw, workdir=ROOT)
    names = [n for n, e in experiments.items() if e["zoom"]["centre"] == "auto" and n in (args.only or [n])]
    info = {
        "hostname": platform.node(),
        "cpu": machine.cpu_info(args.threads),
        "versions": machine.versions(),
    }
    info["loadavg_before"] = os.getloadavg()
    results = []
    for name in names:
        results.append(search(name, experiments[name], args.pilot, torch.device("cpu")))
        row = results[-1]
        shown = [f"{p['decades']:.1f}: {p['roughness']:.2f} ({p['edges']})" for p in row["path"][::3]]
        print(f"{name}: {row['pixels_trained']} pixels, {row['seconds']:.0f} s; roughness (edges) {shown}")
    info["loadavg_after"] = os.getloadavg()
    report = {
        **output.header("trainability-centre-search/1", "benchmarks.centre_search", argv, info),
        "searches": results,
    }
    slug = f"centre-{args.config.stem}-{output.slug(info['cpu']['model'])}-{args.threads}t.json"
    path = args.output or ROOT / "benchmarks" / "results" / slug
    files.write_json(path, report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
