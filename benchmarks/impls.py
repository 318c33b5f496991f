"""The implementations the benchmark compares, each as ``run(spec) -> stats``.

Every implementation trains the same problem (initial weights, data, per-pixel
learning rates) for the same number of steps and returns the kernel's
per-pixel statistics (``trainability.training.STAT_FIELDS``), so all are
scored by the same code. Implementations that keep whole loss trajectories
(the alternatives) turn them into statistics with
``trainability.scoring.stats_from_losses``.

``spec`` is a dict (JSON-serialisable, it crosses a process boundary):
    init_file, steps, x, y (log10 window bounds), resolution, pixels (indices
    into the row-major grid, or None = all), device, dtype, nonlinearity,
    block_pixels (ours), chunk (vmap/jax: pixels per call; None = all).
"""

from __future__ import annotations

import math

import numpy as np

IMPLEMENTATIONS = (
    "ours",  # train_pixels, kernel="auto" (fused where available)
    "ours_torch",  # train_pixels, kernel="torch" (batched torch ops)
    "autograd_loop",  # one pixel at a time, torch autograd, plain Python loop
    "torch_vmap",  # torch.func.vmap(grad_and_value(loss)) over pixels, loop over steps
    "jax_author",  # the notebook: jit(vmap(train_step)), loop over steps, float64
)


def load_problem(spec):
    from trainability.training import as_problem

    with np.load(spec["init_file"]) as npz:
        return as_problem([npz["W0"], npz["W1"]], npz["X"], npz["Y"])


def grid_learning_rates(spec) -> np.ndarray:
    """(P, 2) learning rates of the row-major grid (rows = y), lr_vs_lr axes."""
    from trainability.training import per_layer_learning_rates

    R = spec["resolution"]
    xs = np.logspace(spec["x"][0], spec["x"][1], R)
    ys = np.logspace(spec["y"][0], spec["y"][1], R)
    gx, gy = np.meshgrid(xs, ys)
    lrs, _ = per_layer_learning_rates(gx.ravel(), gy.ravel(), "lr_vs_lr", 2)
    if spec.get("pixels") is not None:
        lrs = lrs[np.asarray(spec["pixels"], dtype=np.int64)]
    return np.ascontiguousarray(lrs)


def _chunks(n, size):
    size = n if not size else size
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


# --------------------------------------------------------------------- ours
def run_ours(spec, problem, lrs, kernel="auto"):
    from trainability.training import train_pixels

    return train_pixels(problem, lrs, nonlinearity=spec["nonlinearity"], steps=spec["steps"],
                        dtype=spec["dtype"], device=spec["device"], kernel=kernel,
                        block_pixels=spec.get("block_pixels"))


def run_ours_torch(spec, problem, lrs):
    return run_ours(spec, problem, lrs, kernel="torch")


# ------------------------------------------------------------ torch autograd
def _torch_net(weights, X, nonlinearity):
    import torch

    h = X
    for W in weights:
        z = h @ W / math.sqrt(W.shape[0])
        if nonlinearity == "tanh":
            h = torch.tanh(z * math.sqrt(2))
        elif nonlinearity == "relu":
            h = torch.relu(z) * math.sqrt(2)
        else:
            h = z
    return z / math.sqrt(weights[-1].shape[0])


def run_autograd_loop(spec, problem, lrs):
    """The plain way: one pixel at a time, autograd for the gradient."""
    import torch

    from trainability.scoring import stats_from_losses

    dtype = getattr(torch, spec["dtype"])
    device = torch.device(spec["device"])
    X = torch.as_tensor(problem.X, dtype=dtype, device=device)
    Y = torch.as_tensor(problem.Y, dtype=dtype, device=device)
    losses = np.empty((len(lrs), spec["steps"]))
    for p, (lr0, lr1) in enumerate(lrs):
        weights = [torch.as_tensor(w, dtype=dtype, device=device) for w in problem.weights]
        trajectory = []
        for _ in range(spec["steps"]):
            params = [w.detach().requires_grad_(True) for w in weights]
            loss = torch.mean((_torch_net(params, X, spec["nonlinearity"]) - Y) ** 2)
            grads = torch.autograd.grad(loss, params)
            trajectory.append(loss.detach())
            with torch.no_grad():
                weights = [w - lr * g for w, g, lr in zip(params, grads, (lr0, lr1))]
        losses[p] = torch.stack(trajectory).double().cpu().numpy()
    return stats_from_losses(losses)


# ------------------------------------------------------------ torch.func.vmap
def run_torch_vmap(spec, problem, lrs):
    """torch.func.vmap(grad_and_value(loss)) over the pixels, a Python loop over steps."""
    import torch
    from torch.func import grad_and_value, vmap

    from trainability.scoring import stats_from_losses

    dtype = getattr(torch, spec["dtype"])
    device = torch.device(spec["device"])
    X = torch.as_tensor(problem.X, dtype=dtype, device=device)
    Y = torch.as_tensor(problem.Y, dtype=dtype, device=device)
    nonlinearity = spec["nonlinearity"]

    def loss_fn(W0, W1):
        return torch.mean((_torch_net((W0, W1), X, nonlinearity) - Y) ** 2)

    step = vmap(grad_and_value(loss_fn, argnums=(0, 1)))
    out = []
    with torch.no_grad():
        for lo, hi in _chunks(len(lrs), spec.get("chunk")):
            n = hi - lo
            lr = torch.as_tensor(lrs[lo:hi], dtype=dtype, device=device)
            lr0, lr1 = lr[:, 0].view(n, 1, 1), lr[:, 1].view(n, 1, 1)
            W0 = torch.as_tensor(problem.weights[0], dtype=dtype, device=device).expand(n, -1, -1).clone()
            W1 = torch.as_tensor(problem.weights[1], dtype=dtype, device=device).expand(n, -1, -1).clone()
            losses = []
            for _ in range(spec["steps"]):
                (g0, g1), loss = step(W0, W1)
                W0 = W0 - lr0 * g0
                W1 = W1 - lr1 * g1
                losses.append(loss)
            out.append(torch.stack(losses, dim=1).double().cpu().numpy())
    return stats_from_losses(np.concatenate(out))


# ------------------------------------------------------------------- JAX
def jax_setup(spec):
    import jax

    jax.config.update("jax_enable_x64", spec["dtype"] == "float64")
    platform = "gpu" if spec["device"].startswith("cuda") else "cpu"
    return jax, jax.devices(platform)[0]


def run_jax_author(spec, problem, lrs, warmup=False):
    """The author's notebook approach (functions net, loss, train_step, train).

    ``jax.jit(jax.vmap(train_step, in_axes=(None, 0, 0, None, None)))`` with
    donated buffers, a Python loop over steps, the losses stacked at the end
    and scored. Only the lr_vs_lr, full-batch, 'loss' readout branch of the
    notebook is kept (the one benchmarked). ``warmup`` compiles with one step.
    """
    jax, dev = jax_setup(spec)
    import jax.numpy as jnp

    from trainability.scoring import stats_from_losses

    nonlinearity = spec["nonlinearity"]
    dt = jnp.float64 if spec["dtype"] == "float64" else jnp.float32

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

    train_step_lrvmap = jax.jit(jax.vmap(train_step, in_axes=(None, 0, 0, None, None), out_axes=(0, 0)),
                                donate_argnums=(0, 1))

    with jax.default_device(dev):
        X = jnp.asarray(problem.X, dt)
        Y = jnp.asarray(problem.Y, dt)
        theta = [jnp.asarray(w, dt) for w in problem.weights]
        steps = 1 if warmup else spec["steps"]
        out = []
        for lo, hi in _chunks(len(lrs), spec.get("chunk")):
            hp = jnp.asarray(lrs[lo:hi], dt)
            bs = hi - lo
            rng = jax.random.split(jax.random.PRNGKey(42), steps)
            _theta = [jnp.tile(u, (bs,) + (1,) * u.ndim) for u in theta]
            losses = []
            for _rng in rng:
                _theta, _loss = train_step_lrvmap(_rng, _theta, hp, X, Y)
                losses.append(_loss)
            out.append(np.asarray(jnp.stack(losses, axis=-1), dtype=np.float64))
    return stats_from_losses(np.concatenate(out))


RUNNERS = {
    "ours": run_ours,
    "ours_torch": run_ours_torch,
    "autograd_loop": run_autograd_loop,
    "torch_vmap": run_torch_vmap,
    "jax_author": run_jax_author,
}


def available(name: str, device: str) -> tuple[bool, str]:
    """Whether an implementation can run here, and why not."""
    if name == "jax_author":
        try:
            import jax  # noqa: F401
        except ImportError:
            return False, "jax is not installed (optional: pip install jax)"
        if device.startswith("cuda"):
            try:
                jax.devices("gpu")
            except RuntimeError:
                return False, "jax has no GPU backend (pip install 'jax[cuda12]')"
    return True, ""
