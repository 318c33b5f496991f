"""The batched torch backend and the dispatcher against the per-pixel autograd reference."""

import math

import numpy as np
import pytest
import torch

from kernel_helpers import make_problem
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
from trainability.kernels import reference
from trainability.kernels.dispatch import train_pixels
from trainability.kernels.torch_batched import _Block


def test_reference_network_is_the_mean_field_formula():
    """The reference against the paper's formula in numpy: z = h W / sqrt(fan_in), tanh(sqrt(2) z)."""
    problem = make_problem(depth=3, width=5, N=7, d_out=2)
    h = problem.X
    for W in problem.weights[:-1]:
        h = np.tanh(math.sqrt(2) * (h @ W) / math.sqrt(W.shape[0]))
    W = problem.weights[-1]
    f = (h @ W) / W.shape[0]  # the output layer: divided by sqrt(fan_in) twice
    weights = [torch.tensor(w) for w in problem.weights]
    out = reference.net(weights, torch.tensor(problem.X), "tanh").numpy()
    np.testing.assert_allclose(out, f, rtol=1e-13)
    v = reference.loss_trajectory(problem, [0.0, 0.0, 0.0], None, nonlinearity="tanh", steps=2)
    assert v[0] == pytest.approx(np.mean((f - problem.Y) ** 2), rel=1e-13) and v[1] == v[0]


def stats_from_losses(v):
    """The anchors' definition, step by step, for one trajectory."""
    v = np.where(np.isfinite(v), v, 1e6)
    u = np.minimum(v / v[0], 1e6)
    tail = u[-min(20, len(u)) :]
    hits = np.nonzero(u >= 1e6)[0]
    return {
        "loss_initial": v[0],
        "loss_final": v[-1],
        "loss_min": v.min(),
        "sum_u": u.sum(),
        "sum_inv_u": (1 / u).sum(),
        "tail_mean_u": tail.mean(),
        "diverged_step": hits[0] if len(hits) else -1,
    }


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
@pytest.mark.parametrize("depth,d_out", [(2, 1), (3, 1), (2, 3)])
def test_gradients_match_autograd(nonlinearity, depth, d_out):
    problem = make_problem(depth=depth, d_out=d_out, seed=depth + d_out)
    rng = np.random.default_rng(1)
    n_pixels = 5
    block = _Block(problem, n_pixels, nonlinearity, torch.float64, torch.device("cpu"))
    # Give every pixel different weights so the per-pixel bookkeeping is tested.
    per_pixel = []
    for p in range(n_pixels):
        ws = [w + 0.3 * rng.standard_normal(w.shape) for w in problem.weights]
        per_pixel.append(ws)
        block.W[0][:, p, :] = torch.tensor(ws[0])
        for layer in range(1, depth):
            block.W[layer][p] = torch.tensor(ws[layer])
    X, Y = torch.tensor(problem.X), torch.tensor(problem.Y)
    loss, grads = block.loss_and_grads(X * block.c[0], Y)
    for p, ws in enumerate(per_pixel):
        params = [torch.tensor(w, requires_grad=True) for w in ws]
        ref_loss = reference.loss(params, X, Y, nonlinearity)
        ref_grads = torch.autograd.grad(ref_loss, params)
        assert loss[p].item() == pytest.approx(ref_loss.item(), rel=1e-12)
        np.testing.assert_allclose(grads[0][:, p, :].numpy(), ref_grads[0].numpy(), rtol=1e-10, atol=1e-13)
        for layer in range(1, depth):
            np.testing.assert_allclose(
                grads[layer][p].numpy(), ref_grads[layer].numpy(), rtol=1e-10, atol=1e-13
            )


CASES = [
    dict(nonlinearity="tanh", phase_space="lr_vs_lr"),
    dict(nonlinearity="relu", phase_space="lr_vs_lr"),
    dict(nonlinearity="identity", phase_space="lr_vs_lr", depth=3),
    dict(nonlinearity="tanh", phase_space="lr_vs_lr", minibatch=4),
    dict(nonlinearity="tanh", phase_space="paraminit_vs_lr", offset_mode="every_step"),
    dict(nonlinearity="tanh", phase_space="paraminit_vs_lr", offset_mode="init_only"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_statistics_match_reference_training(case):
    steps = 40
    problem = make_problem(depth=case.get("depth", 2), minibatch=case.get("minibatch"), steps=steps)
    # Pixels from clearly converging to clearly diverging.
    x = np.array([0.05, 0.5, 2.0, 8.0, 0.3, 40.0])
    y = np.array([0.1, 1.0, 3.0, 0.5, 30.0, 40.0])
    if case["phase_space"] == "paraminit_vs_lr":
        x = x / 40.0
    lrs, offsets = per_layer_learning_rates(x, y, case["phase_space"], len(problem.weights))
    mode = case.get("offset_mode", "every_step")
    stats = train_pixels(
        problem, lrs, offsets, nonlinearity=case["nonlinearity"], steps=steps, offset_mode=mode, device="cpu"
    )
    assert set(stats) == set(STAT_FIELDS)
    diverged = 0
    for p in range(len(x)):
        v = reference.loss_trajectory(
            problem,
            lrs[p],
            None if offsets is None else offsets[p],
            nonlinearity=case["nonlinearity"],
            steps=steps,
            offset_mode=mode,
        )
        expected = stats_from_losses(v)
        diverged += expected["diverged_step"] >= 0
        for name, value in expected.items():
            if name == "diverged_step":
                assert stats[name][p] == value, (p, name)
            elif np.isfinite(v).all() and expected["diverged_step"] < 0:
                assert stats[name][p] == pytest.approx(value, rel=1e-9), (p, name)
            else:
                # Chaotic blow-up amplifies rounding differences; compare the label.
                assert (stats["tail_mean_u"][p] < 1) == (expected["tail_mean_u"] < 1)
    assert diverged >= 1, "the test window must contain diverging pixels"


@pytest.mark.parametrize("phase_space", ["lr_vs_lr", "paraminit_vs_lr"])
def test_results_do_not_depend_on_sharding(phase_space):
    problem = make_problem(N=12, minibatch=3, steps=25)
    rng = np.random.default_rng(3)
    n = 300
    x = 10 ** rng.uniform(-2, 1.5, n)
    y = 10 ** rng.uniform(-2, 1.5, n)
    lrs, offsets = per_layer_learning_rates(x, y, phase_space, 2)
    kw = dict(nonlinearity="tanh", steps=25, device="cpu", block_pixels=64)
    whole = train_pixels(problem, lrs, offsets, **kw)
    for shard_size in (1, 7, 64, 100, 299):
        for start in range(0, n, shard_size):
            stop = min(n, start + shard_size)
            part = train_pixels(
                problem,
                lrs[start:stop],
                None if offsets is None else offsets[start:stop],
                first_pixel=start,
                **kw,
            )
            for name in STAT_FIELDS:
                assert np.array_equal(part[name], whole[name][start:stop], equal_nan=True), (
                    shard_size,
                    start,
                    name,
                )
            if shard_size == 1 and start > 20:
                break  # one-pixel shards: a few suffice, they are slow


def test_float32_close_to_float64_for_converging_pixels():
    problem = make_problem()
    lrs, _ = per_layer_learning_rates(np.array([0.05, 0.2]), np.array([0.1, 0.3]), "lr_vs_lr", 2)
    s64 = train_pixels(problem, lrs, nonlinearity="tanh", steps=30, device="cpu")
    s32 = train_pixels(problem, lrs, nonlinearity="tanh", steps=30, device="cpu", dtype="float32")
    np.testing.assert_allclose(s32["sum_u"], s64["sum_u"], rtol=1e-4)


def test_progress_reaches_total():
    problem = make_problem()
    lrs, _ = per_layer_learning_rates(np.ones(70) * 0.1, np.ones(70) * 0.1, "lr_vs_lr", 2)
    seen = []
    train_pixels(
        problem,
        lrs,
        nonlinearity="relu",
        steps=10,
        device="cpu",
        block_pixels=32,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (700, 700)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(nonlinearity="sigmoid"), "nonlinearity must be one of"),
        (dict(offset_mode="sometimes"), "offset_mode must be one of"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(steps=0), "steps must be a positive integer"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    problem = make_problem()
    lrs = np.ones((3, 2))
    args = dict(nonlinearity="tanh", steps=5) | kwargs
    with pytest.raises(ValueError, match=message):
        train_pixels(problem, lrs, **args)
