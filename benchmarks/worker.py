"""Run one implementation once, in its own process, and report time and peak memory.

    python -m benchmarks.worker SPEC.json OUT_PREFIX

Writes OUT_PREFIX.json (timings, memory) and OUT_PREFIX.npz (per-pixel stats).
Peak memory is the process's own peak resident set (``VmHWM`` of
/proc/self/status; ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` would carry
the parent's peak across fork+exec on Linux). The high-water mark is reset
(/proc/self/clear_refs, "5") after imports, problem set-up and warm-up, so
``rss_peak_extra_bytes`` = peak during the timed run - resident memory before
it is the implementation's own working memory. On CUDA the device's peak
(``torch.cuda.max_memory_allocated`` or JAX's ``peak_bytes_in_use``) is
reported as well. Only the module of the implementation run is imported
(``impls.runner_module``), so JAX counts in the JAX run's memory only.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time

import numpy as np
import torch

from benchmarks import impls
from trainability.kernels import dispatch


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def _peak_rss_bytes() -> int:
    peak = _status_bytes("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(spec_path: str, out_prefix: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    impl = spec["impl"]
    torch.set_num_threads(spec["threads"])
    problem = impls.load_problem(spec)
    lrs = impls.grid_learning_rates(spec)
    module = impls.runner_module(impl)
    run = getattr(module, impls.RUNNERS[impl][1])
    cuda = spec["device"].startswith("cuda")

    # Warm-up on the same pixels, one step (or all, where compiled shapes depend on the
    # step count): compilation (JAX's jit, the fused kernels' build or load) is not timed.
    t0 = time.perf_counter()
    run(spec if getattr(module, "WARMUP_SAME_STEPS", False) else dict(spec, steps=1), problem, lrs)
    warmup_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    gc.collect()
    reset = _reset_peak()
    baseline = _status_bytes("VmRSS") or _peak_rss_bytes()

    t0 = time.perf_counter()
    stats = run(spec, problem, lrs)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0

    result = {
        "impl": impl,
        "pixels": int(len(lrs)),
        "steps": int(spec["steps"]),
        "seconds": seconds,
        "warmup_seconds": warmup_s,
        "pixel_steps_per_s": len(lrs) * spec["steps"] / seconds,
        "rss_baseline_bytes": baseline,
        "rss_peak_bytes": _peak_rss_bytes(),
        "rss_peak_was_reset": reset,
        "torch_threads": torch.get_num_threads(),
    }
    result["rss_peak_extra_bytes"] = result["rss_peak_bytes"] - baseline
    if cuda:
        # JAX allocates outside torch's allocator and reports its own peak.
        peak = getattr(module, "device_peak_bytes", torch.cuda.max_memory_allocated)
        result["device_peak_bytes"] = int(peak())
    if impl in ("ours", "ours_torch"):
        result["kernel"] = dispatch.select_kernel(
            problem, spec["dtype"], spec["device"], "auto" if impl == "ours" else "torch"
        )
    np.savez(out_prefix + ".npz", **{k: np.asarray(v) for k, v in stats.items()})
    with open(out_prefix + ".json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
