"""Per-pixel randomness (trainability.contract.randomness): each pixel's own draw, and the batched
torch backend training per-pixel problems against the reference and across shards."""

import numpy as np
import pytest

from trainability.boundary.scoring import convergence_measure
from trainability.contract import randomness
from trainability.contract.problem import RANDOMNESS, build_problem, one_pixel, per_layer_learning_rates
from trainability.contract.statistics import FLOAT_FIELDS
from trainability.kernels import reference
from trainability.kernels.agreement import perturbed_learning_rates, same_bits, stable_pixels
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import train_pixels

MODEL = {"width": 5, "depth": 2}
STEPS = 30
TRAINING = {"steps": STEPS, "batch": 4}
ALL = tuple(RANDOMNESS)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny problems, one thread


def draw(kinds, pixels, seed=3, model=MODEL, training=TRAINING, target_dim=1):
    data = {"seed": seed, "size": 8, "per_pixel": list(kinds), "target_dim": target_dim}
    shared = build_problem(model, data, training)
    return shared, randomness.pixel_problem(shared, model, data, training, np.asarray(pixels))


def arrays(problem):
    return {
        **{f"W{i}": W for i, W in enumerate(problem.weights)},
        "X": problem.X,
        "Y": problem.Y,
        "minibatch": problem.minibatch_indices,
    }


def assert_same_arrays(a, b):
    for name, value in arrays(a).items():
        other = arrays(b)[name]
        assert value.dtype == other.dtype and value.tobytes() == other.tobytes(), name


def test_a_pixels_draw_does_not_depend_on_the_range_it_is_drawn_with():
    _, wide = draw(ALL, np.arange(10))
    for pixels in (np.arange(4, 7), np.array([7]), np.array([9, 2])):
        _, narrow = draw(ALL, pixels)
        for i, p in enumerate(pixels):
            assert_same_arrays(one_pixel(narrow, i), one_pixel(wide, p))


def test_pixels_draw_differently_and_reproducibly_from_the_seed():
    _, a = draw(ALL, np.arange(4))
    _, again = draw(ALL, np.arange(4))
    assert_same_arrays(a, again)
    _, other_seed = draw(ALL, np.arange(4), seed=4)
    for name, value in arrays(a).items():
        assert not np.array_equal(value, arrays(other_seed)[name]), name
        for p in range(1, 4):  # every pixel's draw differs from pixel 0's
            assert not np.array_equal(value[p], value[0]), (name, p)


@pytest.mark.parametrize("kind", ALL)
def test_each_kind_is_drawn_independently_of_the_others(kind):
    shared, alone = draw([kind], np.arange(5))
    _, together = draw(ALL, np.arange(5))
    assert alone.per_pixel == {kind} and together.per_pixel == set(ALL)
    mine = {"weights": ["W0", "W1"], "data": ["X", "Y"], "minibatch": ["minibatch"]}
    for name, value in arrays(alone).items():
        if name in mine[kind]:  # the same draw whichever other kinds are per pixel
            assert value.tobytes() == arrays(together)[name].tobytes(), name
        else:  # the others stay shared
            assert value is arrays(shared)[name], name


def test_minibatch_indices_lie_in_range():
    shared, problem = draw(["minibatch"], np.arange(20))
    mb = problem.minibatch_indices
    assert mb.shape == (20, STEPS, 4) and np.issubdtype(mb.dtype, np.integer)
    assert mb.min() >= 0 and mb.max() < shared.n_data()
    assert len(np.unique(mb)) == shared.n_data()


X_LR = np.array([0.05, 0.5, 2.0, 8.0, 0.3, 40.0, 3.0, 12.0, 60.0, 1.0, 20.0, 100.0])
Y_LR = np.array([0.1, 1.0, 3.0, 0.5, 30.0, 40.0, 12.0, 2.0, 80.0, 5.0, 50.0, 10.0])


def learning_rates(lo, hi, scale=1.0, depth=2):
    """Pixels from clearly converging to clearly diverging, each pixel's own by its global index."""
    return per_layer_learning_rates(X_LR[lo:hi] * scale, Y_LR[lo:hi] * scale, "lr_vs_lr", depth)[0]


def torch_kernel(problem, lrs, **kw):
    return train_pixels(problem, lrs, None, kernel="torch", device="cpu", block_pixels=4, **kw)


# Each kind per pixel alone and all together (gd); all together with Adam, and with
# momentum in a deeper network with two outputs.
CASES = [
    dict(kinds=("weights",)),
    dict(kinds=("data",)),
    dict(kinds=("minibatch",)),
    dict(kinds=ALL),
    dict(kinds=ALL, optimizer="adam", params={"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
    dict(kinds=ALL, optimizer="momentum", params={"beta": 0.5}, depth=3, target_dim=2),
]


def case_id(case):
    return "-".join(
        ["+".join(case["kinds"]), case.get("optimizer", "gd")]
        + [f"{k}={case[k]}" for k in ("depth", "target_dim") if k in case]
    )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_per_pixel_training_matches_the_reference_on_each_pixels_problem(case):
    n, depth = 12, case.get("depth", 2)
    model = {**MODEL, "depth": depth}
    _, problem = draw(case["kinds"], np.arange(n), model=model, target_dim=case.get("target_dim", 1))
    optimizer = case.get("optimizer", "gd")
    lrs = learning_rates(0, n, scale=0.3 if optimizer == "adam" else 1.0, depth=depth)
    kw = dict(
        nonlinearity="tanh",
        steps=STEPS,
        optimizer=optimizer,
        optimizer_params={k: np.full(n, v) for k, v in case.get("params", {}).items()},
    )
    ours = torch_kernel(problem, lrs, **kw)
    ref = reference.train(Run(problem, lrs, **kw))  # pixel by pixel, on one_pixel(problem, p)
    m, m_ref = convergence_measure(ours), convergence_measure(ref)
    np.testing.assert_array_equal(m < 0, m_ref < 0)
    np.testing.assert_array_equal(ours["diverged_step"], ref["diverged_step"])
    perturbed = [torch_kernel(problem, lp, **kw) for lp in perturbed_learning_rates(lrs)]
    calm = (ref["diverged_step"] < 0) & (m_ref < 0) & stable_pixels(ours, *perturbed)
    assert calm.sum() >= 3, "the pixels must include non-chaotic converging ones"
    for name in FLOAT_FIELDS:
        np.testing.assert_allclose(ours[name][calm], ref[name][calm], rtol=1e-9, err_msg=name)


@pytest.mark.parametrize("kinds", [("data",), ALL], ids="+".join)
def test_per_pixel_training_is_invariant_to_sharding_bitwise(kinds):
    def shard(lo, hi):
        _, problem = draw(kinds, np.arange(lo, hi))
        return torch_kernel(problem, learning_rates(lo, hi), nonlinearity="tanh", steps=STEPS, first_pixel=lo)

    whole = shard(0, 12)
    parts = [shard(0, 5), shard(5, 12)]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in whole}
    assert same_bits(whole, merged).all()
    assert (convergence_measure(whole) < 0).any() and (convergence_measure(whole) >= 0).any()
