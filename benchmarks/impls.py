"""The implementations the benchmark compares, each as ``run(spec, problem, lrs) -> stats``.

Every implementation trains the same problem (initial weights, data, per-pixel
learning rates) for the same number of steps and returns the kernels'
per-pixel statistics (``trainability.contract.statistics.STAT_FIELDS``), so all are
scored by the same code. Implementations that keep whole loss trajectories
(the alternatives) turn them into statistics with
``trainability.contract.statistics.stats_from_losses``.

``spec`` is a dict (JSON-serialisable, it crosses a process boundary):
    init_file, steps, x, y (log10 window bounds), resolution, pixels (indices
    into the row-major grid, or None = all), device, dtype, nonlinearity,
    threads, block_pixels (ours), chunk (vmap/jax: pixels per call; None = all).

The torch implementations live here; the author's JAX approach in
``benchmarks.jax_author``, imported only by the worker that runs it (``RUNNERS``),
so that JAX's memory does not count in the other implementations' peaks.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from types import ModuleType

import numpy as np
import torch
from torch.func import grad_and_value, vmap

from trainability.contract.problem import Problem
from trainability.contract.statistics import stats_from_losses
from trainability.kernels import dispatch, reference
from trainability.kernels.backend import Run
from trainability.ops import selftest

# name -> (module, function); in the order the benchmark runs them.
RUNNERS = {
    "ours": ("benchmarks.impls", "run_ours"),  # train_pixels, kernel="auto" (fused where available)
    "ours_torch": ("benchmarks.impls", "run_ours_torch"),  # train_pixels, kernel="torch" (batched torch)
    "autograd_loop": ("benchmarks.impls", "run_autograd_loop"),  # kernels.reference: a pixel at a time
    "torch_vmap": ("benchmarks.impls", "run_torch_vmap"),  # vmap(grad_and_value(loss)), loop over steps
    "jax_author": ("benchmarks.jax_author", "run"),  # the notebook: jit(vmap(train_step)), float64
}
IMPLEMENTATIONS = tuple(RUNNERS)


def runner_module(name: str) -> ModuleType:
    """The module that holds implementation ``name``, imported now (for the worker)."""
    return importlib.import_module(RUNNERS[name][0])


def load_problem(spec) -> Problem:
    return selftest.load_problem(spec["init_file"])


def subset_indices(n_total: int, k: int | None) -> np.ndarray:
    """k pixels spread evenly over the grid (all when k is None or >= n_total)."""
    if k is None or k >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, k).round().astype(np.int64))


def grid_learning_rates(spec) -> np.ndarray:
    """(P, 2) learning rates of the row-major grid (rows = y), lr_vs_lr axes; only the grid
    indices ``spec["pixels"]`` when given."""
    lrs = selftest.grid_learning_rates(spec["resolution"], spec["x"], spec["y"])
    if spec.get("pixels") is not None:
        lrs = lrs[np.asarray(spec["pixels"], dtype=np.int64)]
    return np.ascontiguousarray(lrs)


def chunks(n: int, size: int | None) -> list[tuple[int, int]]:
    size = n if not size else size
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


def available(name: str, device: str) -> tuple[bool, str]:
    """Whether an implementation can run here, and why not."""
    if name != "jax_author":
        return True, ""
    if importlib.util.find_spec("jax") is None:
        return False, "jax is not installed (optional: pip install jax)"
    if device.startswith("cuda"):
        # Asked in a child process: JAX's GPU client, once started here, would hold
        # most of the GPU's memory while the workers run.
        probe = subprocess.run(
            [sys.executable, "-c", "import jax; jax.devices('gpu')"], capture_output=True, text=True
        )
        if probe.returncode != 0:
            return False, "jax has no GPU backend (pip install 'jax[cuda12]')"
    return True, ""


# --------------------------------------------------------------------- ours
def run_ours(spec, problem, lrs, kernel="auto"):
    return dispatch.train_pixels(
        problem,
        lrs,
        nonlinearity=spec["nonlinearity"],
        steps=spec["steps"],
        dtype=spec["dtype"],
        device=spec["device"],
        kernel=kernel,
        block_pixels=spec.get("block_pixels"),
        threads=spec.get("threads"),
    )


def run_ours_torch(spec, problem, lrs):
    return run_ours(spec, problem, lrs, kernel="torch")


# ------------------------------------------------------------ torch autograd
def run_autograd_loop(spec, problem, lrs):
    """The plain way: one pixel at a time, autograd for the gradient (the tests' reference)."""
    return reference.train(
        Run(
            problem,
            lrs,
            nonlinearity=spec["nonlinearity"],
            steps=spec["steps"],
            dtype=spec["dtype"],
            device=spec["device"],
        )
    )


# ------------------------------------------------------------ torch.func.vmap
def run_torch_vmap(spec, problem, lrs):
    """torch.func.vmap(grad_and_value(loss)) over the pixels, a Python loop over steps."""
    dtype = getattr(torch, spec["dtype"])
    device = torch.device(spec["device"])
    X = torch.as_tensor(problem.X, dtype=dtype, device=device)
    Y = torch.as_tensor(problem.Y, dtype=dtype, device=device)
    nonlinearity = spec["nonlinearity"]

    def loss_fn(W0, W1):
        return reference.loss((W0, W1), X, Y, nonlinearity)

    step = vmap(grad_and_value(loss_fn, argnums=(0, 1)))
    out = []
    with torch.no_grad():
        for lo, hi in chunks(len(lrs), spec.get("chunk")):
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
