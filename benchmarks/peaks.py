"""Measured peaks the benchmark's rates are compared with: float64 FMA throughput and GEMM.

* ``measured_fma_peak``: ``fma_peak.c`` (independent vector FMA chains, nothing
  else in the loop), compiled now with ``-O2 -march=native``, one ctypes call per
  thread (the GIL is released) on all the threads the benchmark uses: what the
  cores' FMA units do at the clock they actually run, with nothing looked up.
* ``measured_gemm_gflops``: a large ``torch.mm``, a practical peak.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

FMA_SOURCE = Path(__file__).with_name("fma_peak.c")
FMA_FLAGS = ("-O2", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared")
# Multiply by just under 1 and add a little: the accumulators converge to a
# normal number (add / (1 - mult)), never denormal, never overflowing.
FMA_MULT, FMA_ADD = 0.999999, 1e-7


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def _load_fma(tmp: Path) -> tuple[ctypes.CDLL | None, str]:
    cc = compiler()
    if cc is None:
        return None, "no C compiler ($CC, gcc, cc) found"
    so = tmp / "fma_peak.so"
    try:
        proc = subprocess.run(
            [cc, *FMA_FLAGS, "-o", str(so), str(FMA_SOURCE)], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"{cc} failed: {err}"
    if proc.returncode != 0:
        return None, f"{cc} failed: {proc.stderr[-1000:]}"
    lib = ctypes.CDLL(str(so))
    lib.fma_peak_run.restype = ctypes.c_double
    lib.fma_peak_run.argtypes = [ctypes.c_long, ctypes.c_double, ctypes.c_double]
    lib.fma_peak_isa.restype = ctypes.c_char_p
    return lib, ""


def _timed_calls(lib: ctypes.CDLL, threads: int, iterations: int) -> float:
    """Seconds from the first thread's start to the last one's end, one call per thread."""
    spans: list[tuple[float, float]] = []
    barrier = threading.Barrier(threads)

    def work():
        barrier.wait()
        t0 = time.perf_counter()
        lib.fma_peak_run(iterations, FMA_MULT, FMA_ADD)
        spans.append((t0, time.perf_counter()))  # list.append is atomic under the GIL

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return max(end for _, end in spans) - min(start for start, _ in spans)


def measured_fma_peak(threads: int, seconds: float = 0.5, repeats: int = 5) -> dict:
    """Float64 GFLOP/s of FMA-bound loops on ``threads`` threads at once, best of ``repeats``.

    Each call runs a fixed iteration count, calibrated on one thread to last about
    ``seconds``. GFLOP/s = threads x iterations x (chains x lanes x 2) / wall seconds.
    ``gflops`` is None when no C compiler can build the loop (``why`` says so).
    """
    with tempfile.TemporaryDirectory(prefix="fma-peak-") as tmp:
        lib, why = _load_fma(Path(tmp))
        if lib is None:
            return {"gflops": None, "why": why, "threads": threads}
        flops_per_iteration = lib.fma_peak_flops_per_iteration()
        iterations = 1 << 20
        while True:  # calibrate (and warm the clock up): double until a call takes >= 50 ms
            dt = _timed_calls(lib, 1, iterations)
            if dt >= 0.05:
                break
            iterations *= 2
        iterations = max(1, int(iterations * seconds / dt))
        rates = [
            threads * iterations * flops_per_iteration / _timed_calls(lib, threads, iterations) / 1e9
            for _ in range(repeats)
        ]
        isa = lib.fma_peak_isa().decode()
        chains, lanes = lib.fma_peak_chains(), lib.fma_peak_lanes()
    return {
        "gflops": max(rates),
        "gflops_per_thread": max(rates) / threads,
        "gflops_all_repeats": rates,
        "threads": threads,
        "isa": isa,
        "vector_chains": chains,
        "float64_lanes": lanes,
        "iterations_per_call": iterations,
        "compiler": compiler(),
        "flags": " ".join(FMA_FLAGS),
        "how": f"benchmarks/fma_peak.c: {chains} independent {isa} FMA chains per thread, one ctypes call "
        f"per thread on {threads} threads at once; threads x iterations x {flops_per_iteration} "
        f"FLOP / wall seconds, best of {repeats}",
    }


def measured_gemm_gflops(
    device: str, dtype: str, threads: int, repeats: int = 5, n: int | None = None
) -> dict:
    """A large GEMM's rate: a practical peak (float64 DGEMM on CPU keeps the FMA units busy)."""
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
