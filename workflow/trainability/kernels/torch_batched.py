"""Batched torch backend: a block of pixels trained with a few dozen tensor operations per step.

Runs on any torch device and any network depth, float64 or float32. All
pixels of a block go through each step together; activations are laid out
(N, B, width), so the first layer's forward pass and weight gradient are
each one large matrix product over all pixels' columns (the bulk of the work).

Bitwise reproducibility across shard sizes: pixels are processed in blocks of
a fixed width, and every block starts at a multiple of that width in the
global pixel order (partial blocks are padded). Every pixel therefore goes
through identically shaped arithmetic at the same position, whichever shard
it belongs to, so the merged grid does not depend on how it was sharded.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainability.problem import Problem, layer_constants
from trainability.statistics import MAX_RATIO, STAT_FIELDS, TAIL_STEPS, empty_stats

NAME = "torch"
TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}

# Fixed block widths: part of a result's identity (changing one can change
# the last bits), so they depend only on the device type.
DEFAULT_BLOCK_PIXELS = {"cpu": 256, "cuda": 16384}


def unsupported(problem: Problem, dtype: str, device: torch.device) -> str | None:
    """Why this backend cannot run the case, or None: it runs every case."""
    return None


def train(
    problem: Problem,
    learning_rates: np.ndarray,
    offsets: np.ndarray | None,
    *,
    nonlinearity: str,
    steps: int,
    offset_mode: str,
    dtype: str,
    device: torch.device,
    first_pixel: int = 0,
    block_pixels: int | None = None,
    threads: int | None = None,
    progress=None,
) -> dict:
    """Per-pixel statistics (``trainability.statistics``) of every pixel; see ``kernels.train_pixels``."""
    if block_pixels is None:
        block_pixels = DEFAULT_BLOCK_PIXELS.get(device.type, 256)
    torch_dtype = TORCH_DTYPES[dtype]
    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    n_pixels = learning_rates.shape[0]
    results = empty_stats(n_pixels)
    X = torch.as_tensor(problem.X, dtype=torch_dtype, device=device)
    Y = torch.as_tensor(problem.Y, dtype=torch_dtype, device=device)
    minibatches = None
    if problem.minibatch_indices is not None:
        minibatches = torch.as_tensor(
            np.asarray(problem.minibatch_indices[:steps], dtype=np.int64), device=device
        )
    # Blocks are aligned to multiples of block_pixels in the global pixel order.
    return _train_blocks(
        problem,
        X,
        Y,
        minibatches,
        learning_rates,
        offsets,
        results,
        first_pixel,
        first_pixel + n_pixels,
        block_pixels,
        n_pixels * steps,
        progress,
        nonlinearity=nonlinearity,
        steps=steps,
        offset_mode=offset_mode,
        dtype=torch_dtype,
        device=device,
    )


class _Block:
    """Weights of ``B`` pixels and the forward/backward pass over them.

    Activations are laid out (N, B, width). The first layer's input X is the
    same for all pixels, so its forward pass and its weight gradient are each
    one large matrix product over all pixels' columns (the bulk of the work).
    Later layers are per-pixel products.

    Constants are folded into pre-activations, ``zeta_l = (a_{l-1} @ W_l) * c_l``
    (``problem.layer_constants``); for the first layer c_0 is folded into X
    once (``Xc`` in ``_train_block``).
    """

    def __init__(self, problem: Problem, n_pixels: int, nonlinearity: str, dtype, device):
        self.nonlinearity = nonlinearity
        self.B = n_pixels
        self.c = layer_constants(problem, nonlinearity)
        W0 = torch.as_tensor(problem.weights[0], dtype=dtype, device=device)
        d_in, width = W0.shape
        # First layer stored as (d_in, B, width): X @ W0.view(d_in, B*width).
        self.W = [W0.unsqueeze(1).expand(d_in, n_pixels, width).contiguous()]
        for W in problem.weights[1:]:
            Wt = torch.as_tensor(W, dtype=dtype, device=device)
            self.W.append(Wt.unsqueeze(0).expand(n_pixels, *Wt.shape).contiguous())
        self._buffers: dict[tuple, torch.Tensor] = {}

    def buffer(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        # Reused work arrays: fresh multi-MB allocations cost page faults.
        key = (name, tuple(shape))
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf

    def _activate(self, zeta: torch.Tensor) -> torch.Tensor:
        if self.nonlinearity == "tanh":
            return zeta.tanh_()
        if self.nonlinearity == "relu":
            return zeta.relu_()
        return zeta

    def forward(self, Xc: torch.Tensor, tag: str):
        """Xc = X * c_0. Returns the output f (N, B, d_out) and hidden activations."""
        N, d_in = Xc.shape
        W0 = self.W[0]
        zeta = self.buffer(tag + "a0", (N, self.B, W0.shape[2]), Xc)
        torch.mm(Xc, W0.view(d_in, -1), out=zeta.view(N, -1))
        activations = [self._activate(zeta)]
        for layer in range(1, len(self.W)):
            zeta = _per_pixel_matmul(activations[-1], self.W[layer], self, f"{tag}z{layer}")
            zeta.mul_(self.c[layer])
            if layer < len(self.W) - 1:
                activations.append(self._activate(zeta))
        return zeta, activations

    def loss(self, Xc: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        f, _ = self.forward(Xc, "loss")
        return f.sub_(Y.unsqueeze(1)).square_().mean(dim=(0, 2))

    def loss_and_grads(self, Xc: torch.Tensor, Y: torch.Tensor):
        f, activations = self.forward(Xc, "grad")
        r = f.sub_(Y.unsqueeze(1))  # (N, B, d_out)
        loss = (r * r).mean(dim=(0, 2))
        dzeta = r.mul_(2.0 / (r.shape[0] * r.shape[2]))
        grads = [None] * len(self.W)
        for layer in range(len(self.W) - 1, 0, -1):
            a = activations[layer - 1]
            grads[layer] = _per_pixel_outer(a, dzeta, self, f"g{layer}").mul_(self.c[layer])
            da = _per_pixel_matmul(dzeta, self.W[layer].transpose(1, 2), self, f"da{layer}")
            dzeta = self._chain(da.mul_(self.c[layer]), a)
        N, d_in = Xc.shape
        g0 = self.buffer("g0", self.W[0].shape, Xc)
        torch.mm(Xc.transpose(0, 1), dzeta.reshape(N, -1), out=g0.view(d_in, -1))
        grads[0] = g0
        return loss, grads

    def _chain(self, da: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """dL/dzeta = dL/da * phi'(zeta), in place on da."""
        if self.nonlinearity == "tanh":
            a2 = torch.mul(a, a, out=self.buffer("a2", a.shape, a))
            return da.addcmul_(da, a2, value=-1.0)  # da * (1 - a^2)
        if self.nonlinearity == "relu":
            return da.mul_(a > 0)
        return da


def _per_pixel_matmul(a: torch.Tensor, W: torch.Tensor, block: _Block, tag: str) -> torch.Tensor:
    """(N, B, k) x (B, k, o) -> (N, B, o): each pixel's activations times its weights."""
    N, B, k = a.shape
    o = W.shape[2]
    if o == 1:
        # A reduction over k beats B tiny matrix-vector products.
        prod = torch.mul(a, W[:, :, 0], out=block.buffer("prod", a.shape, a))
        return torch.sum(prod, dim=2, keepdim=True, out=block.buffer(tag, (N, B, 1), a))
    if k == 1:
        return torch.mul(a, W[:, 0, :], out=block.buffer(tag, (N, B, o), a))
    return torch.einsum("nbk,bko->nbo", a, W)


def _per_pixel_outer(a: torch.Tensor, dz: torch.Tensor, block: _Block, tag: str) -> torch.Tensor:
    """(N, B, k), (N, B, o) -> (B, k, o): per pixel, the sum over data of a^T dz."""
    N, B, k = a.shape
    if dz.shape[2] == 1:
        prod = torch.mul(a, dz, out=block.buffer("prod", a.shape, a))
        return torch.sum(prod, dim=0, out=block.buffer(tag, (B, k), a)).unsqueeze(2)
    return torch.einsum("nbk,nbo->bko", a, dz)


def _train_blocks(
    problem,
    X,
    Y,
    minibatches,
    learning_rates,
    offsets,
    results,
    start,
    stop,
    block_pixels,
    total,
    progress,
    **kwargs,
):
    done = 0
    block_start = (start // block_pixels) * block_pixels
    with torch.no_grad():
        while block_start < stop:
            lo = max(start, block_start)
            hi = min(stop, block_start + block_pixels)
            local = slice(lo - start, hi - start)
            # Real pixels occupy positions lo-block_start .. hi-block_start of
            # the block; the rest are padding copies of the first real pixel.
            position = lo - block_start
            idx = np.full(block_pixels, local.start, dtype=np.int64)
            idx[position : position + (hi - lo)] = np.arange(local.start, local.stop)
            block_lrs = learning_rates[idx]
            block_offsets = None if offsets is None else np.asarray(offsets, np.float64)[idx]
            stats = _train_block(
                problem,
                X,
                Y,
                minibatches,
                block_lrs,
                block_offsets,
                progress=None
                if progress is None
                else (lambda t, base=done, width=hi - lo: progress(base + t * width, total)),
                **kwargs,
            )
            for name in STAT_FIELDS:
                results[name][local] = stats[name][position : position + (hi - lo)]
            done += (hi - lo) * kwargs["steps"]
            block_start += block_pixels
    return results


def _train_block(
    problem, X, Y, minibatches, lrs, offsets, *, nonlinearity, steps, offset_mode, dtype, device, progress
):
    B = lrs.shape[0]
    block = _Block(problem, B, nonlinearity, dtype, device)
    Xc = X * block.c[0]
    lr_t = [torch.as_tensor(lrs[:, i], dtype=dtype, device=device) for i in range(lrs.shape[1])]
    # Learning rates broadcast against each layer's weight layout.
    lr_b = [lr_t[0].view(1, B, 1)] + [lr.view(B, 1, 1) for lr in lr_t[1:]]
    offset_b = None
    if offsets is not None:
        offset_b = torch.as_tensor(offsets, dtype=dtype, device=device).view(1, B, 1)
        if offset_mode == "init_only":
            block.W[0] += offset_b

    f64 = dict(dtype=torch.float64, device=device)
    v0 = torch.zeros(B, **f64)
    loss_final = torch.zeros(B, **f64)
    loss_min = torch.full((B,), math.inf, **f64)
    sum_u = torch.zeros(B, **f64)
    sum_inv_u = torch.zeros(B, **f64)
    tail_sum = torch.zeros(B, **f64)
    diverged_step = torch.full((B,), -1, dtype=torch.int64, device=device)
    tail_from = steps - min(TAIL_STEPS, steps)
    report_every = max(1, steps // 20)

    for t in range(steps):
        if offset_b is not None and offset_mode == "every_step":
            block.W[0] += offset_b
        if minibatches is None:
            loss, grads = block.loss_and_grads(Xc, Y)
        else:
            # The gradient uses the minibatch; the recorded loss is full-batch.
            loss = block.loss(Xc, Y)
            mb = minibatches[t]
            _, grads = block.loss_and_grads(Xc[mb], Y[mb])
        for W, g, lr in zip(block.W, grads, lr_b):
            W.addcmul_(g, lr, value=-1.0)

        v = loss.to(torch.float64)
        v = torch.where(torch.isfinite(v), v, torch.full_like(v, MAX_RATIO))
        if t == 0:
            v0 = v.clone()
        u = torch.clamp(v / v0, max=MAX_RATIO)
        sum_u += u
        sum_inv_u += 1.0 / u
        if t >= tail_from:
            tail_sum += u
        loss_min = torch.minimum(loss_min, v)
        newly = (u >= MAX_RATIO) & (diverged_step < 0)
        diverged_step = torch.where(newly, torch.full_like(diverged_step, t), diverged_step)
        if t == steps - 1:
            loss_final = v
        if progress is not None and (t + 1) % report_every == 0:
            progress(t + 1)

    stats = {
        "loss_initial": v0,
        "loss_final": loss_final,
        "loss_min": loss_min,
        "sum_u": sum_u,
        "sum_inv_u": sum_inv_u,
        "tail_mean_u": tail_sum / min(TAIL_STEPS, steps),
        "diverged_step": diverged_step,
    }
    return {k: v.cpu().numpy() for k, v in stats.items()}
