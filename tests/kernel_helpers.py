"""Small random training problems for the kernel tests, and the C kernels' builds for other ISAs."""

import platform

import numpy as np
import pytest

from trainability.boundary.scoring import convergence_measure
from trainability.contract.problem import as_problem
from trainability.contract.statistics import STAT_FIELDS


def make_problem(depth=2, width=6, N=9, d_out=1, seed=0, minibatch=None, steps=40):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((width, width)) for _ in range(depth - 1)]
    weights.append(rng.standard_normal((width, d_out)))
    X = rng.standard_normal((N, width))
    Y = rng.standard_normal((N, d_out))
    mb = None if minibatch is None else rng.integers(0, N, (steps, minibatch))
    return as_problem(weights, X, Y, mb)


def assert_triton_matches_torch(name: str, pair: dict, dtype: str) -> None:
    """One interpreter run's verdict: the Triton kernel's statistics (``pair["fused"]``) against
    the torch kernel's (``pair["torch"]``): the same labels and divergence steps, and the calm
    pixels (converged, never diverged; there must be some) to 1e-9 (float32: 1e-4)."""
    a = {k: np.asarray(v) for k, v in pair["fused"].items()}
    b = {k: np.asarray(v) for k, v in pair["torch"].items()}
    ma, mb = convergence_measure(a), convergence_measure(b)
    np.testing.assert_array_equal(ma < 0, mb < 0, err_msg=name)
    np.testing.assert_array_equal(a["diverged_step"], b["diverged_step"], err_msg=name)
    calm = (b["diverged_step"] < 0) & (mb < 0)
    assert calm.any(), name
    rtol = 1e-4 if dtype == "float32" else 1e-9
    for field in STAT_FIELDS[:-1]:
        np.testing.assert_allclose(a[field][calm], b[field][calm], rtol=rtol, err_msg=f"{name} {field}")


# The x86-64 micro-architecture levels' flags (/proc/cpuinfo names): a build for a level runs
# only on a CPU that has them.
V3_FLAGS = {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"}
V4_FLAGS = V3_FLAGS | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
X86 = platform.machine() in ("x86_64", "AMD64")
ARM = platform.machine() in ("aarch64", "arm64")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def build_variants(build, variants: dict, out_dir, at_least: int, what: str) -> dict:
    """{name: library} of ``build(march, out_dir, extra_flags)`` for each variant (name -> (march,
    extra flags)); a variant an older compiler does not know is left out, the native one never;
    the test is skipped with fewer than ``at_least`` builds."""
    out, failed = {}, []
    for name, (march, extra) in variants.items():
        try:
            out[name] = build(march, out_dir, extra)
        except RuntimeError as err:
            if name == "native":
                raise
            failed.append(f"{name}: {str(err)[-300:]}")
    if len(out) < at_least:
        pytest.skip(f"fewer than {at_least} builds of {what}: " + "; ".join(failed))
    return out
