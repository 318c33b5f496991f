"""Small random training problems for the kernel tests."""

import numpy as np

from trainability.problem import as_problem


def make_problem(depth=2, width=6, N=9, d_out=1, seed=0, minibatch=None, steps=40):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((width, width)) for _ in range(depth - 1)]
    weights.append(rng.standard_normal((width, d_out)))
    X = rng.standard_normal((N, width))
    Y = rng.standard_normal((N, d_out))
    mb = None if minibatch is None else rng.integers(0, N, (steps, minibatch))
    return as_problem(weights, X, Y, mb)
