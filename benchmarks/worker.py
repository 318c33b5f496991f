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
reported as well.
"""

from __future__ import annotations

import json
import resource
import sys
import time


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
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    from benchmarks import impls

    problem = impls.load_problem(spec)
    lrs = impls.grid_learning_rates(spec)
    runner = impls.RUNNERS[impl]
    cuda = spec["device"].startswith("cuda")

    # Warm-up: compilation (JAX jit, the fused kernels' build or load) is not timed.
    t0 = time.perf_counter()
    if impl == "jax_author":
        impls.run_jax_author(spec, problem, lrs, warmup=True)
    elif impl in ("ours", "ours_torch", "torch_vmap"):
        runner(dict(spec, steps=1), problem, lrs[: min(len(lrs), 2)])
    warmup_s = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    import gc

    gc.collect()
    reset = _reset_peak()
    baseline = _status_bytes("VmRSS") or _peak_rss_bytes()

    t0 = time.perf_counter()
    stats = runner(spec, problem, lrs)
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
        if impl == "jax_author":
            import jax

            mem = jax.devices("gpu")[0].memory_stats() or {}
            result["device_peak_bytes"] = int(mem.get("peak_bytes_in_use", -1))
        else:
            result["device_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    if impl == "ours":
        from trainability.training import selected_kernel

        result["kernel"] = selected_kernel(spec["device"], spec["dtype"], problem, spec["nonlinearity"])
    np.savez(out_prefix + ".npz", **{k: np.asarray(v) for k, v in stats.items()})
    with open(out_prefix + ".json", "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
