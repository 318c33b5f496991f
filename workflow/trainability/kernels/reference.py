"""Per-pixel autograd reference: the paper's training loop written plainly, one pixel at a time.

Shares no arithmetic with the kernels: the network is the notebook's formula
(``net``), gradients come from torch autograd, momentum and Adam are
torch.optim's own SGD and Adam (``trainability.contract.optimizers`` states the rules
the kernels implement), and the statistics come from whole loss trajectories
(``statistics.stats_from_losses``). Tests hold every kernel
to it; the benchmark times it as the "plain way" (``autograd_loop``). Slow:
for a handful of pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainability.contract.problem import Problem, one_pixel
from trainability.contract.statistics import stats_from_losses
from trainability.kernels.backend import TORCH_DTYPES, Run

NAME = "reference"  # never chosen by the dispatcher: the tests and benchmarks call it


def _torch_optimizer(optimizer: str, params, learning_rates, hyper: dict):
    """torch.optim's optimiser over one pixel's weights, one parameter group per layer."""
    groups = [{"params": [p], "lr": float(lr)} for p, lr in zip(params, learning_rates)]
    if optimizer == "momentum":
        return torch.optim.SGD(groups, momentum=float(hyper["beta"]), foreach=False)
    betas = (float(hyper["beta1"]), float(hyper["beta2"]))
    return torch.optim.Adam(groups, betas=betas, eps=float(hyper["eps"]), foreach=False)


def net(weights, X: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """The author's notebook network: z = h W / sqrt(fan_in), phi(z) between layers."""
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


def loss(weights, X: torch.Tensor, Y: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    return torch.mean((net(weights, X, nonlinearity) - Y) ** 2)


def loss_trajectory(
    problem: Problem,
    learning_rates,
    offset: float | None,
    *,
    nonlinearity: str,
    steps: int,
    offset_mode: str = "every_step",
    dtype: str = "float64",
    device: str = "cpu",
    optimizer: str = "gd",
    optimizer_params: dict | None = None,
) -> np.ndarray:
    """Full-batch losses v_0..v_{T-1} of one pixel (recorded before each update).

    ``optimizer_params``: this pixel's hyperparameters (numbers) of ``optimizer``."""
    if optimizer != "gd":
        return _optimizer_trajectory(
            problem,
            learning_rates,
            offset,
            nonlinearity,
            steps,
            offset_mode,
            dtype,
            device,
            optimizer,
            optimizer_params or {},
        )
    tdt = TORCH_DTYPES[dtype]
    weights = [torch.as_tensor(w, dtype=tdt, device=device) for w in problem.weights]
    X = torch.as_tensor(problem.X, dtype=tdt, device=device)
    Y = torch.as_tensor(problem.Y, dtype=tdt, device=device)
    if offset is not None and offset_mode == "init_only":
        weights[0] = weights[0] + offset
    losses = []
    for t in range(steps):
        if offset is not None and offset_mode == "every_step":
            weights[0] = weights[0] + offset
        params = [w.detach().requires_grad_(True) for w in weights]
        full = loss(params, X, Y, nonlinearity)
        if problem.minibatch_indices is None:
            grads = torch.autograd.grad(full, params)
        else:  # the gradient uses the minibatch; the recorded loss is full-batch
            idx = torch.as_tensor(problem.minibatch_indices[t], device=device)
            grads = torch.autograd.grad(loss(params, X[idx], Y[idx], nonlinearity), params)
        losses.append(full.detach())
        with torch.no_grad():
            weights = [w - lr * g for w, g, lr in zip(params, grads, learning_rates)]
    return torch.stack(losses).double().cpu().numpy()


def _optimizer_trajectory(
    problem, learning_rates, offset, nonlinearity, steps, offset_mode, dtype, device, optimizer, hyper
) -> np.ndarray:
    tdt = TORCH_DTYPES[dtype]
    params = [torch.tensor(w, dtype=tdt, device=device, requires_grad=True) for w in problem.weights]
    X = torch.as_tensor(problem.X, dtype=tdt, device=device)
    Y = torch.as_tensor(problem.Y, dtype=tdt, device=device)
    opt = _torch_optimizer(optimizer, params, learning_rates, hyper)
    if offset is not None and offset_mode == "init_only":
        with torch.no_grad():
            params[0].add_(offset)
    losses = []
    for t in range(steps):
        if offset is not None and offset_mode == "every_step":
            with torch.no_grad():
                params[0].add_(offset)
        opt.zero_grad()
        full = loss(params, X, Y, nonlinearity)
        if problem.minibatch_indices is None:
            full.backward()
        else:  # the gradient uses the minibatch; the recorded loss is full-batch
            idx = torch.as_tensor(problem.minibatch_indices[t], device=device)
            loss(params, X[idx], Y[idx], nonlinearity).backward()
        losses.append(full.detach().clone())
        opt.step()
    return torch.stack(losses).double().cpu().numpy()


def unsupported(problem: Problem, dtype: str, device) -> str | None:
    """Why this backend cannot run the case, or None: it runs every case (slowly)."""
    return None


def train(run: Run) -> dict[str, np.ndarray]:
    """The statistics of the run (``backend.Run``), pixel by pixel (per-pixel problems too)."""
    offsets, params = run.offsets, run.optimizer_params
    losses = np.stack(
        [
            loss_trajectory(
                one_pixel(run.problem, p),
                [float(lr) for lr in lrs],
                None if offsets is None else float(offsets[p]),
                nonlinearity=run.nonlinearity,
                steps=run.steps,
                offset_mode=run.offset_mode,
                dtype=run.dtype,
                device=run.device,
                optimizer=run.optimizer,
                optimizer_params={k: float(v[p]) for k, v in params.items()},
            )
            for p, lrs in enumerate(run.learning_rates)
        ]
    )
    return stats_from_losses(losses)
