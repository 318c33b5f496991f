"""The author's notebook approach in JAX (functions net, loss, train_step, train), for the benchmark.

``jax.jit(jax.vmap(train_step, in_axes=(None, 0, 0, None, None)))`` with
donated buffers, a Python loop over steps, the losses stacked at the end and
scored by ``trainability.contract.statistics.stats_from_losses``. Only the lr_vs_lr,
full-batch, 'loss' readout branch of the notebook is kept (the one
benchmarked). jax is optional: without it this module imports, and
``benchmarks.impls.available`` says why it cannot run.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from benchmarks.impls import chunks
from trainability.contract.statistics import stats_from_losses

# JAX compiles per array shape, and the shapes here include the step count (the
# split keys, the stacked losses: ~10 s to compile 1000-way stacking on a busy
# 2-core machine), so the worker's untimed warm-up is the whole run, not one step.
WARMUP_SAME_STEPS = True

if importlib.util.find_spec("jax") is not None:
    import jax
    import jax.numpy as jnp


@functools.cache
def train_step_lrvmap(nonlinearity: str):
    """The notebook's jitted step, one per nonlinearity: the same function object for the
    warm-up and the timed run, so the timed run reuses the compilation."""

    def net(theta, X):
        for W in theta:
            Z = jnp.dot(X, W) / jnp.sqrt(W.shape[0])
            if nonlinearity == "tanh":
                X = jax.nn.tanh(Z * jnp.sqrt(2))
            elif nonlinearity == "relu":
                X = jax.nn.relu(Z) * jnp.sqrt(2)
            else:
                X = Z
        return Z / jnp.sqrt(W.shape[0])

    def loss(theta, X, Y):
        return jnp.mean((net(theta, X) - Y) ** 2)

    def train_step(rng, theta, hparams, X, Y):
        learning_rates = [hparams[i % len(hparams)] for i in range(len(theta))]
        _loss, _grad = jax.value_and_grad(loss)(theta, X, Y)
        return jax.tree_util.tree_map(lambda t, g, lr: t - lr * g, theta, _grad, learning_rates), _loss

    return jax.jit(
        jax.vmap(train_step, in_axes=(None, 0, 0, None, None), out_axes=(0, 0)), donate_argnums=(0, 1)
    )


def run(spec, problem, lrs):
    jax.config.update("jax_enable_x64", spec["dtype"] == "float64")
    dev = jax.devices("gpu" if spec["device"].startswith("cuda") else "cpu")[0]
    dt = jnp.float64 if spec["dtype"] == "float64" else jnp.float32
    step = train_step_lrvmap(spec["nonlinearity"])
    with jax.default_device(dev):
        X = jnp.asarray(problem.X, dt)
        Y = jnp.asarray(problem.Y, dt)
        theta = [jnp.asarray(w, dt) for w in problem.weights]
        out = []
        for lo, hi in chunks(len(lrs), spec.get("chunk")):
            hp = jnp.asarray(lrs[lo:hi], dt)
            bs = hi - lo
            rng = jax.random.split(jax.random.PRNGKey(42), spec["steps"])
            _theta = [jnp.tile(u, (bs,) + (1,) * u.ndim) for u in theta]
            losses = []
            for _rng in rng:
                _theta, _loss = step(_rng, _theta, hp, X, Y)
                losses.append(_loss)
            out.append(np.asarray(jnp.stack(losses, axis=-1), dtype=np.float64))
    return stats_from_losses(np.concatenate(out))


def device_peak_bytes() -> int:
    """JAX's own peak on the GPU (its allocator is not torch's)."""
    mem = jax.devices("gpu")[0].memory_stats() or {}
    return int(mem.get("peak_bytes_in_use", -1))
