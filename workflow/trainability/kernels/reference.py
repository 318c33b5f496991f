"""Per-pixel autograd reference: the paper's training loop written plainly, one pixel at a time.

Shares no arithmetic with the kernels: the network is the notebook's formula
(``net``), gradients come from torch autograd, and the statistics from whole
loss trajectories (``statistics.stats_from_losses``). Tests hold every kernel
to it; the benchmark times it as the "plain way" (``autograd_loop``). Slow:
for a handful of pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainability.problem import Problem
from trainability.statistics import stats_from_losses


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
) -> np.ndarray:
    """Full-batch losses v_0..v_{T-1} of one pixel (recorded before each update)."""
    tdt = getattr(torch, dtype)
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


def train(
    problem: Problem,
    learning_rates: np.ndarray,
    offsets: np.ndarray | None = None,
    *,
    nonlinearity: str,
    steps: int,
    offset_mode: str = "every_step",
    dtype: str = "float64",
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """The statistics of ``kernels.train_pixels``, pixel by pixel."""
    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    losses = np.stack(
        [
            loss_trajectory(
                problem,
                [float(lr) for lr in lrs],
                None if offsets is None else float(offsets[p]),
                nonlinearity=nonlinearity,
                steps=steps,
                offset_mode=offset_mode,
                dtype=dtype,
                device=device,
            )
            for p, lrs in enumerate(learning_rates)
        ]
    )
    return stats_from_losses(losses)
