"""Small random training problems for the kernel tests."""

import numpy as np

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
