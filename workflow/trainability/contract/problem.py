"""The training problem: what all pixels share, and what each pixel varies.

Shared (a ``Problem``): initial weights, data, minibatch sequence; either
generated from a seed, or read from files (the author's exact draw is in
resources/author_init/, recreated with JAX as described in its README). Per
pixel: the layers' learning rates and, for the parameter-initialisation phase
space, an offset added to W_0 (``per_layer_learning_rates``).

Network (mean-field parameterisation of Sohl-Dickstein 2024, no biases):
    a_{-1} = X
    z_l    = a_{l-1} @ W_l / sqrt(fan_in_l)
    a_l    = phi(z_l)                    for all but the last layer
    f      = z_last / sqrt(fan_in_last)
    loss   = mean((f - Y)^2)
with phi = tanh(sqrt(2) z), sqrt(2) relu(z) or z. Every kernel folds the
scales into one constant per layer (``layer_constants``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NONLINEARITIES = ("tanh", "relu", "identity")
# The number that names each nonlinearity inside the fused kernels (C's PHI_* definitions, the
# Triton kernel's PHI constexpr): its place in NONLINEARITIES.
NONLINEARITY_CODES: dict[str, int] = {name: code for code, name in enumerate(NONLINEARITIES)}
OFFSET_MODES = ("every_step", "init_only")
# float64x2: double-double (hi + lo, about 32 digits), past float64's resolution; C kernel only.
DTYPES = ("float64", "float32", "float64x2")
PHASE_SPACES = ("lr_vs_lr", "paraminit_vs_lr")
# What a pixel may draw for itself instead of sharing (trainability.contract.randomness).
RANDOMNESS = ("weights", "data", "minibatch")


@dataclass(frozen=True)
class Problem:
    """Everything pixels share: initial weights, data, minibatch sequence.

    With per-pixel randomness (``trainability.contract.randomness``) the arrays of the kinds in
    ``per_pixel`` ("weights", "data", "minibatch") carry a leading pixel axis: each
    W_l (P, ...), X (P, N, d_in) with Y (P, N, d_out), minibatch_indices (P, steps, batch).
    """

    weights: tuple[np.ndarray, ...]  # W_0 (d_in, width), ..., W_last (width, d_out)
    X: np.ndarray  # (N, d_in)
    Y: np.ndarray  # (N, d_out)
    minibatch_indices: np.ndarray | None = None  # (steps, batch) int, or None = full batch
    per_pixel: frozenset = frozenset()

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Each W_l's shape for one pixel."""
        return [W.shape[1:] if "weights" in self.per_pixel else W.shape for W in self.weights]

    def n_data(self) -> int:
        return self.X.shape[-2]


def pixel_rows(problem: Problem, rows: np.ndarray) -> Problem:
    """The pixels ``rows`` of a per-pixel problem (a shared problem is returned as it is)."""
    if not problem.per_pixel:
        return problem
    rows = np.asarray(rows, dtype=np.int64)
    pick = "weights" in problem.per_pixel
    weights = tuple(W[rows] for W in problem.weights) if pick else problem.weights
    data = "data" in problem.per_pixel
    mb = problem.minibatch_indices
    if mb is not None and "minibatch" in problem.per_pixel:
        mb = mb[rows]
    return Problem(
        weights,
        problem.X[rows] if data else problem.X,
        problem.Y[rows] if data else problem.Y,
        mb,
        problem.per_pixel,
    )


def one_pixel(problem: Problem, p: int) -> Problem:
    """Pixel p's own problem, in the shared form (no pixel axis)."""
    if not problem.per_pixel:
        return problem
    sel = pixel_rows(problem, np.array([p]))
    weights = tuple(W[0] for W in sel.weights) if "weights" in sel.per_pixel else sel.weights
    X, Y = (sel.X[0], sel.Y[0]) if "data" in sel.per_pixel else (sel.X, sel.Y)
    mb = sel.minibatch_indices
    if mb is not None and "minibatch" in sel.per_pixel:
        mb = mb[0]
    return Problem(weights, X, Y, mb)


def as_problem(weights: Sequence[np.ndarray], X, Y, minibatch_indices=None) -> Problem:
    return Problem(
        tuple(np.asarray(w, np.float64) for w in weights),
        np.asarray(X, np.float64),
        np.asarray(Y, np.float64),
        None if minibatch_indices is None else np.asarray(minibatch_indices, np.int64),
    )


def gain_squared(nonlinearity: str) -> int:
    """The square of the hidden layers' gain (the notebook's sqrt(2) for tanh and relu, 1 for
    identity): kernels of other precisions compute ``layer_constants`` from it."""
    return 1 if nonlinearity == "identity" else 2


def layer_constants(problem: Problem, nonlinearity: str) -> list[float]:
    """c_l with zeta_l = (a_{l-1} @ W_l) * c_l: sqrt(2)/sqrt(fan_in) for tanh/relu
    (a = tanh(zeta) = tanh(sqrt(2) z), a = relu(zeta) = sqrt(2) relu(z)),
    1/sqrt(fan_in) for identity, and 1/fan_in for the output (z / sqrt(fan_in), twice)."""
    gain = math.sqrt(gain_squared(nonlinearity))
    fan_ins = [shape[0] for shape in problem.weight_shapes()]
    return [gain / math.sqrt(f) for f in fan_ins[:-1]] + [1.0 / fan_ins[-1]]


def flops_per_pixel_step(problem: Problem) -> float:
    """Approximate floating-point operations of one training step of one pixel."""
    N = problem.n_data()
    gemm = sum(shape[0] * shape[1] for shape in problem.weight_shapes())
    batch = N if problem.minibatch_indices is None else problem.minibatch_indices.shape[-1]
    forward = 2 * N * gemm
    backward = 2 * batch * gemm * 2 + (0 if problem.minibatch_indices is None else 2 * batch * gemm)
    return float(forward + backward)


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
    raise ValueError(f"phase_space must be one of {PHASE_SPACES}, got {phase_space!r}")


def check_training_arguments(
    problem: Problem, learning_rates, offsets, nonlinearity: str, steps, offset_mode: str, dtype: str
) -> None:
    """Raise ValueError naming the first argument of a training call that is wrong."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    if offset_mode not in OFFSET_MODES:
        raise ValueError(f"offset_mode must be one of {OFFSET_MODES}, got {offset_mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if len(problem.weights) < 2:
        raise ValueError("the network needs at least 2 weight matrices")
    lrs = np.asarray(learning_rates)
    if lrs.ndim != 2 or lrs.shape[1] != len(problem.weights):
        raise ValueError(f"learning_rates must have shape (pixels, {len(problem.weights)}), got {lrs.shape}")
    if offsets is not None and np.asarray(offsets).shape != (lrs.shape[0],):
        raise ValueError(f"offsets must have shape ({lrs.shape[0]},), got {np.shape(offsets)}")
    n_pixels = lrs.shape[0]
    for kind in problem.per_pixel:
        if kind not in RANDOMNESS:
            raise ValueError(f"per_pixel must name kinds among {RANDOMNESS}, got {kind!r}")
    leading = [W.shape[0] for W in problem.weights] if "weights" in problem.per_pixel else []
    leading += [problem.X.shape[0], problem.Y.shape[0]] if "data" in problem.per_pixel else []
    if "minibatch" in problem.per_pixel and problem.minibatch_indices is not None:
        leading.append(problem.minibatch_indices.shape[0])
    if any(n != n_pixels for n in leading):
        raise ValueError(
            f"per-pixel arrays must have {n_pixels} pixels along their first axis, got {leading}"
        )
    if problem.minibatch_indices is not None:
        mb = np.asarray(problem.minibatch_indices)
        mb_dims = 3 if "minibatch" in problem.per_pixel else 2
        if mb.ndim != mb_dims or mb.shape[-2] < steps:
            raise ValueError(f"minibatch_indices must have shape (>= {steps} steps, batch), got {mb.shape}")
        if mb.size and (mb.min() < 0 or mb.max() >= problem.n_data()):
            raise ValueError(f"minibatch indices must lie in [0, {problem.n_data()})")


def model_kind(model: dict) -> str:
    """``mlp`` (the paper's network; the default, left out of resolved configs) or
    ``quadratic_cosine`` (Liu's one-dimensional control, trainability.kernels.quadratic_cosine)."""
    return model.get("kind", "mlp")


def n_parameters(model: dict, target_dim: int) -> int:
    width, depth = model["width"], model["depth"]
    return width * width * (depth - 1) + width * target_dim


def dataset_size(size, model: dict, target_dim: int) -> int:
    """N from the config: "params" (as the notebook: parameters / target_dim), "width" or an int."""
    if size == "params":
        return n_parameters(model, target_dim) // target_dim
    if size == "width":
        return model["width"]
    if isinstance(size, int) and size >= 1:
        return size
    raise ValueError(f"data.size must be 'params', 'width' or a positive integer, got {size!r}")


def weight_shapes(model: dict, target_dim: int) -> list[tuple[int, int]]:
    # Input dimension = width, as in the paper.
    width, depth = model["width"], model["depth"]
    return [(width, width)] * (depth - 1) + [(width, target_dim)]


def load_init_file(path: str | Path, model: dict, target_dim: int) -> dict[str, np.ndarray]:
    """Read and check an .npz with W0..W{depth-1}, X, Y; raise ValueError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    try:
        with np.load(path) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except Exception as err:  # zip or pickle errors of a damaged file
        raise ValueError(f"cannot read {path} as .npz: {err}") from err
    shapes = weight_shapes(model, target_dim)
    required = [f"W{i}" for i in range(len(shapes))] + ["X", "Y"]
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}; it must hold {required}")
    for i, shape in enumerate(shapes):
        if arrays[f"W{i}"].shape != shape:
            raise ValueError(f"{path}: W{i} has shape {arrays[f'W{i}'].shape}, expected {shape}")
    X, Y = arrays["X"], arrays["Y"]
    width = model["width"]
    if X.ndim != 2 or X.shape[1] != width or X.shape[0] < 1:
        raise ValueError(f"{path}: X has shape {X.shape}, expected (N, {width})")
    if Y.shape != (X.shape[0], target_dim):
        raise ValueError(f"{path}: Y has shape {Y.shape}, expected ({X.shape[0]}, {target_dim})")
    for key in required:
        if not np.issubdtype(arrays[key].dtype, np.floating) and not np.issubdtype(
            arrays[key].dtype, np.integer
        ):
            raise ValueError(f"{path}: {key} is not numeric ({arrays[key].dtype})")
        if not np.all(np.isfinite(arrays[key])):
            raise ValueError(f"{path}: {key} contains NaN or infinite values")
    return {k: arrays[k].astype(np.float64) for k in required}


def load_minibatch_file(path: str | Path, steps: int, batch: int, n_data: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    try:
        idx = np.load(path)
    except Exception as err:
        raise ValueError(f"cannot read {path} as .npy: {err}") from err
    if idx.ndim != 2 or idx.shape[0] < steps or idx.shape[1] != batch:
        raise ValueError(f"{path}: shape {idx.shape}, expected (>= {steps} steps, {batch})")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{path}: indices must be integers, got {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n_data:
        raise ValueError(f"{path}: indices must lie in [0, {n_data})")
    return idx[:steps].astype(np.int64)


def dataset_size_of(exp: dict, workdir: str | Path = ".") -> int:
    data = exp["data"]
    if "init_file" in data:
        with np.load(Path(workdir) / data["init_file"]) as npz:
            return int(npz["X"].shape[0])
    return int(data["size"])


def build_problem(model: dict, data: dict, training: dict, workdir: str | Path = "."):
    """The shared initial weights, data and minibatch sequence of an experiment."""
    workdir = Path(workdir)
    target_dim = data.get("target_dim", 1)
    shapes = weight_shapes(model, target_dim)
    if "init_file" in data:
        arrays = load_init_file(workdir / data["init_file"], model, target_dim)
        weights = [arrays[f"W{i}"] for i in range(len(shapes))]
        X, Y = arrays["X"], arrays["Y"]
    else:
        # One generator, drawn in a fixed order: weights, then X, then Y.
        rng = np.random.default_rng(data.get("seed", 0))
        weights = [rng.standard_normal(shape) for shape in shapes]
        n = int(data["size"])
        X = rng.standard_normal((n, model["width"]))
        Y = rng.standard_normal((n, target_dim))
    minibatch = None
    batch = training.get("batch", "full")
    if batch != "full":
        steps = training["steps"]
        if "minibatch_file" in training:
            minibatch = load_minibatch_file(workdir / training["minibatch_file"], steps, batch, X.shape[0])
        else:
            seed = training.get("minibatch_seed", data.get("seed", 0) + 1)
            minibatch = np.random.default_rng(seed).integers(0, X.shape[0], (steps, batch))
    return Problem(tuple(weights), X, Y, minibatch)
