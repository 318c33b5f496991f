"""Momentum and Adam in the batched torch backend against the per-pixel autograd reference
(torch.optim's own SGD and Adam), and their bitwise properties."""

import numpy as np
import pytest

from kernel_helpers import make_problem
from trainability.boundary.scoring import convergence_measure
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import FLOAT_FIELDS
from trainability.kernels import reference
from trainability.kernels.agreement import perturbed_learning_rates, same_bits, stable_pixels
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import train_pixels

# Pixels from clearly converging to clearly diverging.
X_LR = np.array([0.05, 0.5, 2.0, 8.0, 0.3, 40.0, 3.0, 12.0])
Y_LR = np.array([0.1, 1.0, 3.0, 0.5, 30.0, 40.0, 12.0, 2.0])
P = len(X_LR)
STEPS = 40
ADAM_DEFAULTS = dict(beta1=0.9, beta2=0.999, eps=1e-8)
# Non-default Adam hyperparameters, varying per pixel.
ADAM_VARIED = dict(
    beta1=np.linspace(0.0, 0.95, P), beta2=np.linspace(0.5, 0.99, P), eps=np.geomspace(1e-6, 1e-2, P)
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny problems, one thread


CASES = [
    dict(optimizer="momentum", params=dict(beta=0.5), nonlinearity="tanh"),
    dict(optimizer="momentum", params=dict(beta=0.9), nonlinearity="relu"),
    dict(optimizer="momentum", params=dict(beta=np.linspace(0.0, 0.95, P)), nonlinearity="tanh"),
    dict(optimizer="momentum", params=dict(beta=0.9), nonlinearity="identity", depth=3),
    dict(optimizer="momentum", params=dict(beta=0.5), nonlinearity="tanh", d_out=3),
    dict(optimizer="momentum", params=dict(beta=0.9), nonlinearity="tanh", minibatch=4),
    dict(optimizer="adam", params=ADAM_DEFAULTS, nonlinearity="tanh"),
    dict(optimizer="adam", params=ADAM_DEFAULTS, nonlinearity="relu", depth=3),
    dict(optimizer="adam", params=ADAM_VARIED, nonlinearity="identity"),
    dict(optimizer="adam", params=ADAM_VARIED, nonlinearity="tanh", minibatch=4),
    dict(optimizer="adam", params=ADAM_DEFAULTS, nonlinearity="tanh", phase_space="paraminit_vs_lr"),
    dict(
        optimizer="adam",
        params=ADAM_VARIED,
        nonlinearity="tanh",
        phase_space="paraminit_vs_lr",
        offset_mode="init_only",
    ),
]


def case_id(case):
    parts = [case["optimizer"], case["nonlinearity"]]
    parts += [
        f"{k}={case[k]}" for k in ("depth", "d_out", "minibatch", "phase_space", "offset_mode") if k in case
    ]
    varied = any(np.ndim(v) for v in case["params"].values())
    return "-".join(parts + ["per-pixel" if varied else "-".join(f"{v}" for v in case["params"].values())])


def inputs(case, steps=STEPS):
    depth = case.get("depth", 2)
    problem = make_problem(
        depth=depth, d_out=case.get("d_out", 1), minibatch=case.get("minibatch"), steps=steps
    )
    phase_space = case.get("phase_space", "lr_vs_lr")
    # Adam's steps are about lr per weight whatever the gradient: smaller rates.
    scale = 0.3 if case["optimizer"] == "adam" else 1.0
    x = X_LR / 40.0 if phase_space == "paraminit_vs_lr" else X_LR * scale
    lrs, offsets = per_layer_learning_rates(x, Y_LR * scale, phase_space, depth)
    params = {k: np.broadcast_to(np.asarray(v, np.float64), (P,)).copy() for k, v in case["params"].items()}
    kw = dict(
        nonlinearity=case["nonlinearity"],
        steps=steps,
        offset_mode=case.get("offset_mode", "every_step"),
        optimizer=case["optimizer"],
        optimizer_params=params,
    )
    return problem, lrs, offsets, kw


def torch_kernel(problem, lrs, offsets, **kw):
    kw.setdefault("block_pixels", P)
    return train_pixels(problem, lrs, offsets, kernel="torch", device="cpu", **kw)


def assert_matches_reference(ours, ref, perturbed, labels_only=False):
    m, m_ref = convergence_measure(ours), convergence_measure(ref)
    np.testing.assert_array_equal(m < 0, m_ref < 0)
    if labels_only:
        return
    np.testing.assert_array_equal(ours["diverged_step"], ref["diverged_step"])
    calm = (ref["diverged_step"] < 0) & (m_ref < 0) & stable_pixels(ours, *perturbed)
    assert calm.sum() >= 3, "the pixels must include non-chaotic converging ones"
    for name in FLOAT_FIELDS:
        np.testing.assert_allclose(ours[name][calm], ref[name][calm], rtol=1e-9, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_optimizer_matches_torch_optim_reference(case):
    problem, lrs, offsets, kw = inputs(case)
    ours = torch_kernel(problem, lrs, offsets, **kw)
    ref = reference.train(Run(problem, lrs, offsets, **kw))
    perturbed = [torch_kernel(problem, lp, offsets, **kw) for lp in perturbed_learning_rates(lrs)]
    assert_matches_reference(ours, ref, perturbed)


def test_float32_labels_match_reference():
    problem, lrs, offsets, kw = inputs(dict(optimizer="adam", params=ADAM_DEFAULTS, nonlinearity="tanh"))
    ours = torch_kernel(problem, lrs, offsets, dtype="float32", **kw)
    ref = reference.train(Run(problem, lrs, offsets, dtype="float32", **kw))
    assert_matches_reference(ours, ref, [], labels_only=True)


def test_momentum_with_beta_zero_is_gd_bit_for_bit():
    problem, lrs, offsets, kw = inputs(dict(optimizer="momentum", params=dict(beta=0.0), nonlinearity="tanh"))
    gd = torch_kernel(problem, lrs, offsets, **{**kw, "optimizer": "gd", "optimizer_params": None})
    assert same_bits(torch_kernel(problem, lrs, offsets, **kw), gd).all()
    heavy = torch_kernel(problem, lrs, offsets, **{**kw, "optimizer_params": dict(beta=np.full(P, 0.9))})
    assert not same_bits(heavy, gd).any()


def test_adam_is_invariant_to_sharding_bitwise():
    n = 13
    rng = np.random.default_rng(5)
    x, y = np.exp(rng.uniform(-3, 3, n)), np.exp(rng.uniform(-3, 3, n))
    lrs, _ = per_layer_learning_rates(x, y, "lr_vs_lr", 2)
    params = dict(beta1=np.linspace(0.5, 0.95, n), beta2=np.linspace(0.9, 0.999, n), eps=np.full(n, 1e-8))
    problem = make_problem(minibatch=4, steps=30)
    kw = dict(nonlinearity="tanh", steps=30, optimizer="adam", block_pixels=4)

    def run(lo, hi):
        sub = {k: v[lo:hi] for k, v in params.items()}
        return torch_kernel(problem, lrs[lo:hi], None, first_pixel=lo, optimizer_params=sub, **kw)

    whole = run(0, n)
    for cuts in ([0, 5, n], [0, 3, 4, 11, n], [0, 1, n]):
        parts = [run(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])]
        merged = {k: np.concatenate([p[k] for p in parts]) for k in whole}
        assert same_bits(whole, merged).all(), cuts
    # A shard starting elsewhere in a block holds the same bits for its pixels.
    tail = run(6, n)
    assert same_bits({k: v[6:] for k, v in whole.items()}, tail).all()
