"""Batched gradient-descent training of one small MLP per pixel.

Every pixel of a hyperparameter grid trains the same network (same initial
weights, same data, same minibatch sequence) with its own per-layer learning
rates and, for the parameter-initialisation phase space, its own offset added
to the first weight matrix. All pixels of a shard are trained together in one
torch run.

Network (mean-field parameterisation of Sohl-Dickstein 2024, no biases):
    a_{-1} = X
    z_l    = a_{l-1} @ W_l / sqrt(fan_in_l)
    a_l    = phi(z_l)                    for all but the last layer
    f      = z_last / sqrt(fan_in_last)
    loss   = mean((f - Y)^2)

The per-pixel result is a handful of running statistics of the loss
trajectory (see ``STAT_FIELDS``), from which ``trainability.scoring`` computes
the paper's convergence measure and alternatives without retraining.

Bitwise reproducibility across shard sizes: pixels are processed in blocks of
a fixed width, and every block starts at a multiple of that width in the
global pixel order (partial blocks are padded). Every pixel therefore goes
through identically shaped arithmetic at the same position, whichever shard
it belongs to, so the merged grid does not depend on how it was sharded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

NONLINEARITIES = ("tanh", "relu", "identity")
OFFSET_MODES = ("every_step", "init_only")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
KERNELS = ("auto", "torch", "fused")

MAX_RATIO = 1e6  # losses are capped at this multiple of the initial loss
TAIL_STEPS = 20  # convergence is judged on the mean of the last 20 steps

STAT_FIELDS = (
    "loss_initial",  # v_0, non-finite replaced by 1e6
    "loss_final",  # v_{T-1}, same replacement
    "loss_min",  # min_t v_t
    "sum_u",  # sum_t u_t, u_t = min(v_t / v_0, 1e6)
    "sum_inv_u",  # sum_t 1 / u_t
    "tail_mean_u",  # mean of u_t over the last min(20, T) steps
    "diverged_step",  # first t with u_t >= 1e6, or -1
)

# Fixed block widths: part of a result's identity (changing one can change
# the last bits), so they depend only on the device type.
DEFAULT_BLOCK_PIXELS = {"cpu": 256, "cuda": 16384}

SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Problem:
    """Everything pixels share: initial weights, data, minibatch sequence."""

    weights: tuple[np.ndarray, ...]  # W_0 (d_in, width), ..., W_last (width, d_out)
    X: np.ndarray  # (N, d_in)
    Y: np.ndarray  # (N, d_out)
    minibatch_indices: np.ndarray | None = None  # (steps, batch) int, or None = full batch


ProgressCallback = Callable[[int, int], None]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` means CUDA when available, CPU otherwise."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _Block:
    """Weights of ``B`` pixels and the forward/backward pass over them.

    Activations are laid out (N, B, width). The first layer's input X is the
    same for all pixels, so its forward pass and its weight gradient are each
    one large matrix product over all pixels' columns (the bulk of the work).
    Later layers are per-pixel products.

    Constants are folded into pre-activations: ``zeta_l = (a_{l-1} @ W_l) * c_l``
    with ``c_l = sqrt(2)/sqrt(fan_in)`` for tanh/relu (so a = tanh(zeta) =
    tanh(sqrt(2) z) and a = relu(zeta) = sqrt(2) relu(z)), ``1/sqrt(fan_in)``
    for identity, and ``1/fan_in`` for the output (z / sqrt(fan_in), twice).
    For the first layer c_0 is folded into X once (see ``scaled_input``).
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


def layer_constants(problem: Problem, nonlinearity: str) -> list[float]:
    """The constants c_l of ``_Block`` (mean-field scales and the sqrt(2) gain)."""
    gain = 1.0 if nonlinearity == "identity" else SQRT2
    fan_ins = [W.shape[0] for W in problem.weights]
    return [gain / math.sqrt(f) for f in fan_ins[:-1]] + [1.0 / fan_ins[-1]]


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


def train_pixels(
    problem: Problem,
    learning_rates: np.ndarray,
    offsets: np.ndarray | None = None,
    *,
    nonlinearity: str,
    steps: int,
    offset_mode: str = "every_step",
    dtype: str = "float64",
    device: str | torch.device | None = "auto",
    first_pixel: int = 0,
    block_pixels: int | None = None,
    progress: ProgressCallback | None = None,
    kernel: str = "auto",
) -> dict[str, np.ndarray]:
    """Train one network per pixel and return per-pixel loss statistics.

    Args:
        problem: shared initial weights, data and minibatch index sequence.
        learning_rates: (P, n_layers) learning rate of each layer, per pixel.
        offsets: (P,) value added to every entry of W_0, per pixel, or None.
        nonlinearity: ``tanh`` | ``relu`` | ``identity``.
        steps: number of gradient-descent steps T (losses v_0..v_{T-1}).
        offset_mode: ``every_step`` re-adds the offset before every step, as
            the author's notebook does (W_0 drifts by t*offset);
            ``init_only`` adds it once to the initial weights.
        dtype: ``float64`` (default, as in the paper) or ``float32``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        first_pixel: global index of the first pixel (aligns blocks so
            results do not depend on sharding).
        block_pixels: block width; default depends on the device type.
        progress: called as ``progress(pixel_steps_done, pixel_steps_total)``.
        kernel: ``torch`` (batched torch operations, any device), ``fused``
            (one fused kernel per pixel, ``trainability.fused``: C on CPU,
            Triton on CUDA; depth-2 networks; float64 only on CPU) or
            ``auto`` (``selected_kernel``: fused where it is available and
            supports the problem, torch otherwise). The kernels agree to
            rounding, not bit for bit; each is invariant to sharding.

    Returns:
        dict of ``STAT_FIELDS`` -> (P,) arrays (float64; ``diverged_step`` int64).
    """
    _check_arguments(problem, learning_rates, offsets, nonlinearity, steps, offset_mode, dtype)
    torch_device = resolve_device(device)
    torch_dtype = DTYPES[dtype]
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "auto":
        kernel = selected_kernel(torch_device, dtype, problem, nonlinearity)
    if kernel == "fused":
        return _train_fused(problem, learning_rates, offsets, nonlinearity=nonlinearity, steps=steps,
                            offset_mode=offset_mode, dtype=dtype, device=torch_device,
                            block_pixels=block_pixels, progress=progress)
    if block_pixels is None:
        block_pixels = DEFAULT_BLOCK_PIXELS.get(torch_device.type, 256)
    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    n_pixels = learning_rates.shape[0]

    results = {
        name: np.empty(n_pixels, dtype=np.int64 if name == "diverged_step" else np.float64)
        for name in STAT_FIELDS
    }
    X = torch.as_tensor(problem.X, dtype=torch_dtype, device=torch_device)
    Y = torch.as_tensor(problem.Y, dtype=torch_dtype, device=torch_device)
    minibatches = None
    if problem.minibatch_indices is not None:
        minibatches = torch.as_tensor(
            np.asarray(problem.minibatch_indices[:steps], dtype=np.int64), device=torch_device
        )

    # Blocks are aligned to multiples of block_pixels in the global pixel order.
    start = first_pixel
    stop = first_pixel + n_pixels
    total = n_pixels * steps
    results = _train_blocks(
        problem, X, Y, minibatches, learning_rates, offsets, results, start, stop,
        block_pixels, total, progress, nonlinearity=nonlinearity, steps=steps,
        offset_mode=offset_mode, dtype=torch_dtype, device=torch_device)
    if progress is not None:
        progress(total, total)
    return results


def selected_kernel(device, dtype: str, problem: Problem, nonlinearity: str) -> str:
    """The kernel ``kernel="auto"`` picks: ``fused`` when available for this case, else ``torch``.

    CPU: the C kernel, when it builds (a C compiler is present), for float64
    depth-2 networks. CUDA: the Triton kernel, when triton is importable, for
    depth-2 networks with one output.
    """
    from trainability import fused

    device = resolve_device(device)
    if device.type == "cpu":
        ok = fused.cpu_supports(problem, dtype) and fused.cpu_kernel_available()
    elif device.type == "cuda":
        ok = fused.gpu_supports(problem, dtype) and fused.triton_available()
    else:
        ok = False
    return "fused" if ok else "torch"


def _train_fused(problem, learning_rates, offsets, *, nonlinearity, steps, offset_mode, dtype,
                 device, block_pixels, progress):
    from trainability import fused

    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    if device.type == "cpu":
        if not fused.cpu_supports(problem, dtype):
            raise ValueError("the fused CPU kernel supports float64 depth-2 networks only; use kernel='torch'")
        results = fused.train_pixels_cpu(problem, learning_rates, offsets, nonlinearity=nonlinearity,
                                         steps=steps, offset_mode=offset_mode, progress=progress)
    elif device.type == "cuda":
        if not fused.gpu_supports(problem, dtype):
            raise ValueError("the fused GPU kernel supports depth-2 networks with one output only; "
                             "use kernel='torch'")
        results = fused.train_pixels_gpu(problem, learning_rates, offsets, nonlinearity=nonlinearity,
                                         steps=steps, offset_mode=offset_mode, dtype=dtype,
                                         device=device, block_pixels=block_pixels, progress=progress)
    else:
        raise ValueError(f"no fused kernel for device type {device.type!r}")
    total = learning_rates.shape[0] * steps
    if progress is not None:
        progress(total, total)
    return results


def _train_blocks(problem, X, Y, minibatches, learning_rates, offsets, results, start, stop,
                  block_pixels, total, progress, **kwargs):
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
                problem, X, Y, minibatches, block_lrs, block_offsets,
                progress=None if progress is None else
                (lambda t, base=done, width=hi - lo: progress(base + t * width, total)),
                **kwargs,
            )
            for name in STAT_FIELDS:
                results[name][local] = stats[name][position : position + (hi - lo)]
            done += (hi - lo) * kwargs["steps"]
            block_start += block_pixels
    return results


def _train_block(problem, X, Y, minibatches, lrs, offsets, *, nonlinearity, steps,
                 offset_mode, dtype, device, progress):
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


def _check_arguments(problem, learning_rates, offsets, nonlinearity, steps, offset_mode, dtype):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    if offset_mode not in OFFSET_MODES:
        raise ValueError(f"offset_mode must be one of {OFFSET_MODES}, got {offset_mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if len(problem.weights) < 2:
        raise ValueError("the network needs at least 2 weight matrices")
    lrs = np.asarray(learning_rates)
    if lrs.ndim != 2 or lrs.shape[1] != len(problem.weights):
        raise ValueError(
            f"learning_rates must have shape (pixels, {len(problem.weights)}), got {lrs.shape}"
        )
    if offsets is not None and np.asarray(offsets).shape != (lrs.shape[0],):
        raise ValueError(f"offsets must have shape ({lrs.shape[0]},), got {np.shape(offsets)}")
    if problem.minibatch_indices is not None:
        mb = np.asarray(problem.minibatch_indices)
        if mb.ndim != 2 or mb.shape[0] < steps:
            raise ValueError(
                f"minibatch_indices must have shape (>= {steps} steps, batch), got {mb.shape}"
            )
        if mb.size and (mb.min() < 0 or mb.max() >= problem.X.shape[0]):
            raise ValueError(f"minibatch indices must lie in [0, {problem.X.shape[0]})")


def per_layer_learning_rates(x: np.ndarray, y: np.ndarray, phase_space: str, n_layers: int):
    """Map grid coordinates to (learning_rates (P, n_layers), offsets (P,) or None).

    ``lr_vs_lr``: layer i gets [x, y][i % 2] (the author's convention: input
    layer x, output layer y for the 2-layer net). ``paraminit_vs_lr``: x is the
    offset added to W_0 and y the learning rate of every layer.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if phase_space == "lr_vs_lr":
        return np.stack([x if i % 2 == 0 else y for i in range(n_layers)], axis=1), None
    if phase_space == "paraminit_vs_lr":
        return np.repeat(y[:, None], n_layers, axis=1), x
    raise ValueError(f"phase_space must be 'lr_vs_lr' or 'paraminit_vs_lr', got {phase_space!r}")


def flops_per_pixel_step(problem: Problem) -> float:
    """Approximate floating-point operations of one training step of one pixel."""
    N = problem.X.shape[0]
    gemm = sum(W.shape[0] * W.shape[1] for W in problem.weights)
    batch = N if problem.minibatch_indices is None else problem.minibatch_indices.shape[1]
    forward = 2 * N * gemm
    backward = 2 * batch * gemm * 2 + (0 if problem.minibatch_indices is None else 2 * batch * gemm)
    return float(forward + backward)


def as_problem(weights: Sequence[np.ndarray], X, Y, minibatch_indices=None) -> Problem:
    return Problem(tuple(np.asarray(w, np.float64) for w in weights), np.asarray(X, np.float64),
                   np.asarray(Y, np.float64),
                   None if minibatch_indices is None else np.asarray(minibatch_indices, np.int64))
