"""What machine a benchmark ran on: CPU, GPU, library versions (recorded with every result).

The CPU's float64 peak is measured (``benchmarks.peaks``), not looked up: FMA
widths and unit counts per vendor and generation are easy to get wrong (AMD
Zen 4 runs AVX-512 on 256-bit units, Zen 5 on 512-bit ones). The ISA label and
clock here are for the record only. No GPU loop is measured yet, so the GPU's
peak is still a lookup, labelled ``theoretical``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

import numpy as np
import torch


def _lscpu() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def isa_label(flags: set[str]) -> str:
    """The widest float64 FMA instruction set the CPU reports (not its units' width)."""
    if "avx512f" in flags:
        return "avx512f"
    if "fma" in flags and "avx2" in flags:
        return "avx2+fma"
    if "avx" in flags:
        return "avx"
    if "sse2" in flags:
        return "sse2"
    return platform.machine()


def cpu_info(threads: int) -> dict:
    info = _lscpu()
    flags = set(info.get("Flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mhz, clock_source = None, None
    if info.get("CPU max MHz"):
        mhz, clock_source = float(info["CPU max MHz"]), "lscpu CPU max MHz"
    elif info.get("BogoMIPS"):
        mhz, clock_source = float(info["BogoMIPS"]) / 2, "lscpu BogoMIPS / 2 (= TSC clock on x86)"
    return {
        "model": info.get("Model name", platform.processor()),
        "vendor": info.get("Vendor ID", ""),
        "family": int(info.get("CPU family", "0") or 0),
        "model_number": int(info["Model"]) if info.get("Model", "").isdigit() else None,
        "cores_available": cores,
        "threads_per_core": int(info.get("Thread(s) per core", "1") or 1),
        "threads_used": threads,
        "isa": isa_label(flags),
        "clock_mhz": mhz,
        "clock_source": clock_source,
        "hypervisor": info.get("Hypervisor vendor"),
        "l2_cache": info.get("L2 cache"),
        "l3_cache": info.get("L3 cache"),
    }


def gpu_info() -> dict:
    props = torch.cuda.get_device_properties(0)
    cc = (props.major, props.minor)
    # float64 FMA units per SM (CUDA programming guide, arithmetic throughput table).
    fp64_per_sm = {(6, 0): 32, (7, 0): 32, (8, 0): 32, (9, 0): 64, (10, 0): 64}.get(cc, 2)
    mhz = None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
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
        "fp64_units_source": "lookup: CUDA programming guide's throughput table, by compute capability",
        "clock_mhz": mhz,
        "clock_source": "nvidia-smi clocks.max.sm" if mhz else None,
        "theoretical_float64_peak_gflops": peak,
        "peak_formula": "SMs x FP64 FMA units per SM (looked up) x 2 x max SM clock "
        "(CUDA cores, not tensor cores)",
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("jax", "jaxlib", "triton"):
        out[name] = _version(name)
    out["glibc"] = "-".join(platform.libc_ver())
    return out
