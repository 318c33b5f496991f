"""Batched torch backend: a block of pixels trained with a few dozen tensor operations per step.

Runs on any torch device and network depth, float64 or float32, every optimiser
(``trainability.contract.optimizers``; per-pixel hyperparameters, state per block) and
per-pixel weights, data and minibatches. All pixels of a block go through each
step together; activations are laid out (N, B, width), so with shared data the
first layer's forward pass and weight gradient are each one large matrix product
over all pixels' columns (the bulk of the work), with per-pixel data batched ones.

Bitwise reproducibility across shard sizes: pixels are processed in blocks of
a fixed width, and every block starts at a multiple of that width in the
global pixel order (partial blocks are padded). Every pixel therefore goes
through identically shaped arithmetic at the same position, whichever shard
it belongs to, so the merged grid does not depend on how it was sharded (per-pixel
inputs are sliced with the block's pixels, ``problem.pixel_rows``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainability.contract.problem import Problem, layer_constants, pixel_rows
from trainability.contract.statistics import MAX_RATIO, STAT_FIELDS, TAIL_STEPS, empty_stats
from trainability.kernels.backend import TORCH_DTYPES, Run

NAME = "torch"

# Fixed block widths: part of a result's identity (changing one can change
# the last bits), so they depend only on the device type.
DEFAULT_BLOCK_PIXELS = {"cpu": 256, "cuda": 16384}


def unsupported(problem: Problem, dtype: str, device: torch.device) -> str | None:
    """Why this backend cannot run the case, or None: it runs every case torch has a dtype for."""
    if dtype not in TORCH_DTYPES:
        return f"the torch kernel runs {tuple(TORCH_DTYPES)}; {dtype} (double-double): the C kernel, on CPU"
    return None


def train(run: Run) -> dict:
    """Per-pixel statistics (``trainability.contract.statistics``) of every pixel of the run
    (``backend.Run``), in blocks of ``run.block_pixels`` (default per device type)."""
    block_pixels = run.block_pixels
    if block_pixels is None:
        block_pixels = DEFAULT_BLOCK_PIXELS.get(run.device.type, 256)
    kw = dict(nonlinearity=run.nonlinearity, steps=run.steps, offset_mode=run.offset_mode)
    kw.update(optimizer=run.optimizer, dtype=TORCH_DTYPES[run.dtype], device=run.device)
    problem = run.problem
    # Shared data and minibatches go to the device once; per-pixel ones block by block.
    shared = (
        None
        if problem.per_pixel & {"data", "minibatch"}
        else _inputs(problem, run.steps, kw["dtype"], run.device)
    )
    pixels = (run.learning_rates, run.offsets, run.optimizer_params)
    return _train_blocks(problem, shared, *pixels, run.first_pixel, block_pixels, run.progress, kw)


def _inputs(problem: Problem, steps: int, dtype, device):
    """X, Y and the minibatch indices as tensors: shared (N, d) and (steps, batch), or per
    pixel (B, N, d) and (steps, B, batch) for a block's pixels (``problem.pixel_rows``)."""
    X = torch.as_tensor(problem.X, dtype=dtype, device=device)
    Y = torch.as_tensor(problem.Y, dtype=dtype, device=device)
    minibatches = None
    if problem.minibatch_indices is not None:
        mb = np.asarray(problem.minibatch_indices, dtype=np.int64)
        mb = mb[:, :steps].transpose(1, 0, 2) if "minibatch" in problem.per_pixel else mb[:steps]
        minibatches = torch.as_tensor(np.ascontiguousarray(mb), device=device)
    return X, Y, minibatches


class _Block:
    """Weights of ``B`` pixels and the forward/backward pass over them.

    Activations are laid out (N, B, width). The first layer's weights are stored
    (d_in, B, width). When the pixels share X (N, d_in), the first layer's forward
    pass and weight gradient are each one large matrix product over all pixels'
    columns (the bulk of the work); with per-pixel data, X is (B, N, d_in) and they
    are batched products over the pixel axis. Later layers are per-pixel products.

    Constants are folded into pre-activations, ``zeta_l = (a_{l-1} @ W_l) * c_l``
    (``problem.layer_constants``); for the first layer c_0 is folded into X
    once (``Xc`` in ``_train_block``).
    """

    def __init__(self, problem: Problem, n_pixels: int, nonlinearity: str, dtype, device):
        self.nonlinearity = nonlinearity
        self.B = n_pixels
        self.c = layer_constants(problem, nonlinearity)
        weights = [torch.tensor(W, dtype=dtype, device=device) for W in problem.weights]
        if "weights" in problem.per_pixel:  # each pixel's own W_l, (B, ...)
            self.W = [weights[0].transpose(0, 1).contiguous()] + [W.contiguous() for W in weights[1:]]
        else:
            W0 = weights[0]
            d_in, width = W0.shape
            # First layer stored as (d_in, B, width): X @ W0.view(d_in, B*width).
            self.W = [W0.unsqueeze(1).expand(d_in, n_pixels, width).contiguous()]
            for Wt in weights[1:]:
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
        W0 = self.W[0]
        if Xc.dim() == 2:
            N, d_in = Xc.shape
            zeta = self.buffer(tag + "a0", (N, self.B, W0.shape[2]), Xc)
            torch.mm(Xc, W0.view(d_in, -1), out=zeta.view(N, -1))
        else:  # per-pixel data (B, N, d_in): one product per pixel
            out = self.buffer(tag + "b0", (self.B, Xc.shape[1], W0.shape[2]), Xc)
            zeta = torch.bmm(Xc, W0.transpose(0, 1), out=out).transpose(0, 1)
        activations = [self._activate(zeta)]
        for layer in range(1, len(self.W)):
            zeta = _per_pixel_matmul(activations[-1], self.W[layer], self, f"{tag}z{layer}")
            zeta.mul_(self.c[layer])
            if layer < len(self.W) - 1:
                activations.append(self._activate(zeta))
        return zeta, activations

    def loss(self, Xc: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        f, _ = self.forward(Xc, "loss")
        return f.sub_(_targets(Y)).square_().mean(dim=(0, 2))

    def loss_and_grads(self, Xc: torch.Tensor, Y: torch.Tensor):
        f, activations = self.forward(Xc, "grad")
        r = f.sub_(_targets(Y))  # (N, B, d_out)
        loss = (r * r).mean(dim=(0, 2))
        dzeta = r.mul_(2.0 / (r.shape[0] * r.shape[2]))
        grads = [None] * len(self.W)
        for layer in range(len(self.W) - 1, 0, -1):
            a = activations[layer - 1]
            grads[layer] = _per_pixel_outer(a, dzeta, self, f"g{layer}").mul_(self.c[layer])
            da = _per_pixel_matmul(dzeta, self.W[layer].transpose(1, 2), self, f"da{layer}")
            dzeta = self._chain(da.mul_(self.c[layer]), a)
        if Xc.dim() == 2:
            N, d_in = Xc.shape
            g0 = self.buffer("g0", self.W[0].shape, Xc)
            torch.mm(Xc.transpose(0, 1), dzeta.reshape(N, -1), out=g0.view(d_in, -1))
        else:  # per pixel: Xc[b]^T dzeta[:, b], stored (B, d_in, width), returned (d_in, B, width)
            out = self.buffer("g0b", (self.B, Xc.shape[2], dzeta.shape[2]), Xc)
            g0 = torch.bmm(Xc.transpose(1, 2), dzeta.transpose(0, 1), out=out).transpose(0, 1)
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


def _targets(Y: torch.Tensor) -> torch.Tensor:
    """Y against the output f (N, B, d_out): shared (N, d_out) or per pixel (B, N, d_out)."""
    return Y.unsqueeze(1) if Y.dim() == 2 else Y.transpose(0, 1)


def _rows(A: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
    """The minibatch rows of X or Y: shared indices (batch,) or each pixel's (B, batch);
    shared A (N, d) or per pixel (B, N, d). Per-pixel results are (B, batch, d)."""
    if A.dim() == 2:
        return A[mb]
    if mb.dim() == 1:
        return A[:, mb]
    return A[torch.arange(A.shape[0], device=A.device).unsqueeze(1), mb]


def _layouts(values: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
    """A (B,) per-pixel value broadcast against each layer's weight layout."""
    B = values.shape[0]
    return [values.view(1, B, 1)] + [values.view(B, 1, 1)] * (n_layers - 1)


def _updater(optimizer: str, W: list, lr_b: list, hyper: dict):
    """The update of every layer's weights (in place) from their gradients, with its
    state (one per block): ``trainability.contract.optimizers``'s rules, per-pixel hyperparameters."""
    if optimizer == "gd":

        def gd(grads):
            for Wl, g, lr in zip(W, grads, lr_b):
                Wl.addcmul_(g, lr, value=-1.0)

        return gd
    if optimizer == "momentum":
        beta = _layouts(hyper["beta"], len(W))
        m = [torch.zeros_like(Wl) for Wl in W]

        def momentum(grads):
            for Wl, g, lr, ml, b in zip(W, grads, lr_b, m, beta):
                Wl.addcmul_(ml.mul_(b).add_(g), lr, value=-1.0)  # m <- beta m + g; W <- W - lr m

        return momentum
    if optimizer == "adam":
        return _Adam(W, lr_b, hyper)
    raise ValueError(f"unknown optimizer {optimizer!r}")


class _Adam:
    """m <- beta1 m + (1 - beta1) g; v <- beta2 v + (1 - beta2) g^2; b1 <- b1 beta1; b2 <- b2 beta2;
    W <- W - s (m / (sqrt(v) r + eps)), s = lr / (1 - b1), r = 1 / sqrt(1 - b2) (optimizers.py)."""

    def __init__(self, W: list, lr_b: list, hyper: dict):
        n = len(W)
        self.W, self.lr_b = W, lr_b
        self.beta1, self.beta2 = hyper["beta1"], hyper["beta2"]
        self.b1, self.b2 = torch.ones_like(self.beta1), torch.ones_like(self.beta2)
        self.h = {k: _layouts(v, n) for k, v in hyper.items()}
        self.h.update({f"1-{k}": _layouts(1.0 - hyper[k], n) for k in ("beta1", "beta2")})
        self.m, self.v, self.t1, self.t2 = ([torch.zeros_like(Wl) for Wl in W] for _ in range(4))

    def __call__(self, grads):
        n, h = len(self.W), self.h
        c1 = _layouts(1.0 - self.b1.mul_(self.beta1), n)
        r = _layouts(1.0 / torch.sqrt(1.0 - self.b2.mul_(self.beta2)), n)
        for layer, (Wl, g) in enumerate(zip(self.W, grads)):
            t1, t2 = self.t1[layer], self.t2[layer]
            m = self.m[layer].mul_(h["beta1"][layer]).addcmul_(g, h["1-beta1"][layer])
            g2 = torch.mul(g, g, out=t1).mul_(h["1-beta2"][layer])
            v = self.v[layer].mul_(h["beta2"][layer]).add_(g2)
            denom = torch.sqrt(v, out=t1).mul_(r[layer]).add_(h["eps"][layer])
            Wl.sub_(torch.div(m, denom, out=t2).mul_(self.lr_b[layer] / c1[layer]))


def _train_blocks(problem, shared, learning_rates, offsets, hyper, start, block_pixels, progress, kw):
    n_pixels = learning_rates.shape[0]
    results = empty_stats(n_pixels)
    stop = start + n_pixels
    total = n_pixels * kw["steps"]
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
            block_problem = pixel_rows(problem, idx)
            stats = _train_block(
                block_problem,
                shared or _inputs(block_problem, kw["steps"], kw["dtype"], kw["device"]),
                learning_rates[idx],
                None if offsets is None else np.asarray(offsets, np.float64)[idx],
                {k: v[idx] for k, v in hyper.items()},
                None if progress is None else (lambda t, base=done, w=hi - lo: progress(base + t * w, total)),
                **kw,
            )
            for name in STAT_FIELDS:
                results[name][local] = stats[name][position : position + (hi - lo)]
            done += (hi - lo) * kw["steps"]
            block_start += block_pixels
    return results


def _train_block(problem, inputs, lrs, offsets, hyper, progress, *, steps, offset_mode, dtype, device, **kw):
    B = lrs.shape[0]
    X, Y, minibatches = inputs
    block = _Block(problem, B, kw["nonlinearity"], dtype, device)
    Xc = X * block.c[0]
    lr_t = [torch.as_tensor(lrs[:, i], dtype=dtype, device=device) for i in range(lrs.shape[1])]
    # Learning rates broadcast against each layer's weight layout.
    lr_b = [lr_t[0].view(1, B, 1)] + [lr.view(B, 1, 1) for lr in lr_t[1:]]
    hyper = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in hyper.items()}
    update = _updater(kw["optimizer"], block.W, lr_b, hyper)
    offset_b = None
    if offsets is not None:
        offset_b = torch.as_tensor(offsets, dtype=dtype, device=device).view(1, B, 1)
        if offset_mode == "init_only":
            block.W[0] += offset_b
    stats = _Statistics(B, steps, device)
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
            _, grads = block.loss_and_grads(_rows(Xc, mb), _rows(Y, mb))
        update(grads)
        stats.record(t, loss)
        if progress is not None and (t + 1) % report_every == 0:
            progress(t + 1)
    return stats.result()


class _Statistics:
    """The running statistics (``trainability.contract.statistics``) of a block's loss trajectories."""

    def __init__(self, B: int, steps: int, device):
        f64 = dict(dtype=torch.float64, device=device)
        self.steps, self.tail_from = steps, steps - min(TAIL_STEPS, steps)
        self.v0 = self.loss_final = torch.zeros(B, **f64)
        self.loss_min = torch.full((B,), math.inf, **f64)
        self.sum_u, self.sum_inv_u, self.tail_sum = (torch.zeros(B, **f64) for _ in range(3))
        self.diverged_step = torch.full((B,), -1, dtype=torch.int64, device=device)

    def record(self, t: int, loss: torch.Tensor) -> None:
        v = loss.to(torch.float64)
        v = torch.where(torch.isfinite(v), v, torch.full_like(v, MAX_RATIO))
        if t == 0:
            self.v0 = v.clone()
        u = torch.clamp(v / self.v0, max=MAX_RATIO)
        self.sum_u += u
        self.sum_inv_u += 1.0 / u
        if t >= self.tail_from:
            self.tail_sum += u
        self.loss_min = torch.minimum(self.loss_min, v)
        newly = (u >= MAX_RATIO) & (self.diverged_step < 0)
        self.diverged_step = torch.where(newly, torch.full_like(self.diverged_step, t), self.diverged_step)
        if t == self.steps - 1:
            self.loss_final = v

    def result(self) -> dict:
        stats = {
            "loss_initial": self.v0,
            "loss_final": self.loss_final,
            "loss_min": self.loss_min,
            "sum_u": self.sum_u,
            "sum_inv_u": self.sum_inv_u,
            "tail_mean_u": self.tail_sum / min(TAIL_STEPS, self.steps),
            "diverged_step": self.diverged_step,
        }
        return {k: v.cpu().numpy() for k, v in stats.items()}
