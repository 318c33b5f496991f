"""Per-pixel randomness: each pixel draws its own initial weights, data or minibatch sequence.

An experiment's ``data.per_pixel`` lists the kinds a pixel draws for itself
(``problem.RANDOMNESS``: weights, data, minibatch); the others stay shared
(``problem.build_problem``). Pixel p's draw of a kind comes from its own generator,
``numpy.random.default_rng([seed, kind, p])`` (a SeedSequence of the experiment's seed,
the kind's index in RANDOMNESS and the pixel's global index in the frame), so that a
pixel's problem depends on nothing but those three numbers: results stay bitwise
independent of sharding, and switching one kind to per-pixel leaves the others' draws
as they were. ``seed`` is ``data.seed`` for weights and data, the minibatch seed
(``training.minibatch_seed``, default ``data.seed + 1``) for minibatches, as for the
shared draw. Within a kind the draw order is that of the shared draw: W_0..W_last;
X then Y; the (steps, batch) indices.
"""

from __future__ import annotations

import numpy as np

from trainability.contract.problem import RANDOMNESS, Problem, weight_shapes


def kinds(data: dict) -> frozenset:
    """The kinds of randomness an experiment draws per pixel."""
    return frozenset(data.get("per_pixel", ()))


def _generator(seed: int, kind: str, pixel: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), RANDOMNESS.index(kind), int(pixel)])


def pixel_problem(shared: Problem, model: dict, data: dict, training: dict, pixels: np.ndarray) -> Problem:
    """The problem of the pixels with global indices ``pixels``: ``shared`` where the
    experiment draws nothing per pixel, else its per-pixel kinds drawn for each pixel."""
    drawn = kinds(data)
    if not drawn:
        return shared
    pixels = np.asarray(pixels, dtype=np.int64).reshape(-1)
    seed = data.get("seed", 0)
    weights, X, Y, mb = shared.weights, shared.X, shared.Y, shared.minibatch_indices
    if "weights" in drawn:
        shapes = weight_shapes(model, data.get("target_dim", 1))
        per = [[] for _ in shapes]
        for p in pixels:
            rng = _generator(seed, "weights", p)
            for layer, shape in enumerate(shapes):
                per[layer].append(rng.standard_normal(shape))
        weights = tuple(np.stack(ws) if len(pixels) else np.empty((0, *s)) for ws, s in zip(per, shapes))
    if "data" in drawn:
        n, d_in, d_out = shared.X.shape[0], shared.X.shape[1], shared.Y.shape[1]
        xs, ys = [], []
        for p in pixels:
            rng = _generator(seed, "data", p)
            xs.append(rng.standard_normal((n, d_in)))
            ys.append(rng.standard_normal((n, d_out)))
        X = np.stack(xs) if len(pixels) else np.empty((0, n, d_in))
        Y = np.stack(ys) if len(pixels) else np.empty((0, n, d_out))
    if "minibatch" in drawn:
        steps, batch = shared.minibatch_indices.shape
        mb_seed = training.get("minibatch_seed", seed + 1)
        n = shared.X.shape[0]
        draws = [_generator(mb_seed, "minibatch", p).integers(0, n, (steps, batch)) for p in pixels]
        mb = np.stack(draws) if len(pixels) else np.empty((0, steps, batch), dtype=np.int64)
    return Problem(tuple(weights), X, Y, mb, drawn)
