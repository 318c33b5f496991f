"""The benchmark report's human side: the table printed to stdout and the JSON file's name."""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def header(schema: str, module: str, argv: list[str] | None, machine: dict) -> dict:
    """The fields every benchmark report starts with: its schema, when, the command that made it
    (``python -m <module> ...``, to rerun it), and the machine."""
    arguments = sys.argv[1:] if argv is None else argv
    return {
        "schema": schema,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([f"python -m {module}", *arguments]),
        "machine": machine,
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _percent(x: float | None) -> str:
    return "" if x is None else f"{100 * x:5.1f}%"


def table(report: dict) -> str:
    fma = report["machine"]["cpu"].get("measured_fma_peak") or {}
    lines = [
        f"load average {report['machine']['loadavg_before'][0]:.2f} before, "
        f"{report['machine']['loadavg_after'][0]:.2f} after (1 min)"
    ]
    if fma:
        lines.append(
            f"measured FMA peak: {fma['gflops'] or float('nan'):.1f} GFLOP/s float64 on "
            f"{fma['threads']} threads ({fma.get('isa') or fma.get('why')})"
        )
    for dtype, run in report["runs"].items():
        cuda = "theoretical_peak_gflops" in run
        nan = float("nan")
        peak = (
            f"theoretical peak (lookup) {run['theoretical_peak_gflops'] or nan:.1f} GFLOP/s"
            if cuda
            else f"measured FMA peak {run['measured_fma_peak_gflops'] or nan:.1f} GFLOP/s"
        )
        lines.append(
            f"{dtype}: measured GEMM {run['measured_gemm']['gflops']:.1f} GFLOP/s, {peak}, "
            f"{run['converged_fraction']:.0%} of pixels converged, "
            f"{run['stable_fraction']:.0%} stable (not chaotic), "
            f"{run['away_from_boundary_fraction']:.0%} away from the boundary"
        )
        lines.append(
            f"{'implementation':15s} {'pixel-steps/s':>14s} {'ratio':>8s} {'GFLOP/s':>8s} "
            f"{'%GEMM':>6s} {'%peak*' if cuda else '%FMA':>6s} {'peak RSS':>9s} {'+RSS':>9s} "
            f"{'pixels':>7s} agree"
        )
        for name, row in run["implementations"].items():
            frac = row["fraction_of_theoretical_peak"] if cuda else row["fraction_of_measured_fma_peak"]
            lines.append(
                f"{name:15s} {row['pixel_steps_per_s']:14.0f} {row['ratio_to_ours']:8.3f} "
                f"{row['gflops']:8.2f} "
                f"{_percent(row['fraction_of_measured_gemm_peak']):>6s} {_percent(frac):>6s} "
                f"{row['rss_peak_bytes'] / 2**20:7.0f}Mi {row['rss_peak_extra_bytes'] / 2**20:7.0f}Mi "
                f"{row['pixels_timed']:7d} {'yes' if row['agreement_with_ours']['ok'] else 'NO'}"
            )
    return "\n".join(lines)


def default_output(args, report) -> Path:
    if args.device.startswith("cuda"):
        name = "cuda-" + slug(report["machine"]["gpu"]["model"])
    else:
        cpu = report["machine"]["cpu"]
        name = f"cpu-{slug(cpu['model'])}-{cpu['threads_used']}t"
    return ROOT / "benchmarks" / "results" / f"{name}.json"
