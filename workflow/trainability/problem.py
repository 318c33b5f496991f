"""What all pixels of an experiment share: initial weights, data, minibatches.

Either generated from a seed, or read from files (the author's exact draw is
in resources/author_init/, recreated with JAX as described in its README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np



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
        if not np.issubdtype(arrays[key].dtype, np.floating) and not np.issubdtype(arrays[key].dtype, np.integer):
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
    """The shared initial weights, data and minibatch sequence of an experiment (a training.Problem)."""
    # Imported here: the Snakefile imports this module, and torch is slow to import.
    from trainability.training import Problem

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
