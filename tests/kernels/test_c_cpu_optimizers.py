"""Momentum and Adam in the fused C kernel (kernels.c_cpu): against the autograd reference
(torch.optim's own SGD-momentum and Adam, ``kernels.reference``), bitwise invariant to
chunking, threads and which pixels share a call, not ignored (momentum with beta = 0 is
gd bit for bit, beta = 0.9 is not), and the same bits in another build; per-pixel
problems are refused with the reason.

The gd kernel's bits are pinned by tests/kernels/test_c_cpu_bits.py (digests); these tests
record none, they compare runs.
"""

import platform

import numpy as np
import pytest
import torch

from kernel_helpers import make_problem
from trainability.boundary.scoring import convergence_measure
from trainability.contract.optimizers import OPTIMIZER_CODES, OPTIMIZERS
from trainability.contract.problem import Problem, per_layer_learning_rates
from trainability.contract.statistics import FLOAT_FIELDS
from trainability.kernels import c_cpu, dispatch, reference
from trainability.kernels.agreement import perturbed_learning_rates, same_bits, stable_pixels
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import KernelUnsupported

CPU = torch.device("cpu")
needs_c = pytest.mark.skipif(
    c_cpu.load_library() is None,
    reason=f"C kernel unavailable: {c_cpu.unsupported(make_problem(), 'float64', CPU)}",
)

X_LR = np.array([0.05, 0.5, 2.0, 8.0, 0.3, 40.0, 3.0, 12.0])
Y_LR = np.array([0.1, 1.0, 3.0, 0.5, 30.0, 40.0, 12.0, 2.0])
# gd's window scaled so that it straddles the boundary for each optimiser
LR_SCALE = {"momentum": 0.3, "adam": 1.0}
P = len(X_LR)


def hyperparameters(optimizer: str, kind: str, n: int = P) -> dict[str, np.ndarray]:
    """Each hyperparameter as a (n,) array: a constant, or varying per pixel."""
    if optimizer == "momentum":
        beta = {"0.9": 0.9, "0.5": 0.5}
        return {"beta": np.linspace(0.0, 0.95, n) if kind == "per-pixel" else np.full(n, beta[kind])}
    if kind == "defaults":
        return {"beta1": np.full(n, 0.9), "beta2": np.full(n, 0.999), "eps": np.full(n, 1e-8)}
    return {  # non-default, per pixel
        "beta1": np.linspace(0.5, 0.95, n),
        "beta2": np.linspace(0.9, 0.9999, n)[::-1],
        "eps": np.geomspace(1e-8, 1e-3, n),
    }


CASES = [
    dict(optimizer="momentum", hyper="0.9", nonlinearity="tanh"),
    dict(optimizer="momentum", hyper="per-pixel", nonlinearity="relu"),
    dict(optimizer="momentum", hyper="0.5", nonlinearity="identity"),
    dict(optimizer="momentum", hyper="0.9", nonlinearity="tanh", d_out=3),
    dict(optimizer="momentum", hyper="per-pixel", nonlinearity="tanh", minibatch=4),
    dict(optimizer="momentum", hyper="0.9", nonlinearity="tanh", offset_mode="every_step"),
    dict(optimizer="momentum", hyper="per-pixel", nonlinearity="relu", offset_mode="init_only"),
    dict(optimizer="adam", hyper="defaults", nonlinearity="tanh"),
    dict(optimizer="adam", hyper="per-pixel", nonlinearity="relu"),
    dict(optimizer="adam", hyper="defaults", nonlinearity="identity"),
    dict(optimizer="adam", hyper="per-pixel", nonlinearity="relu", d_out=3),
    dict(optimizer="adam", hyper="per-pixel", nonlinearity="tanh", minibatch=4),
    dict(optimizer="adam", hyper="defaults", nonlinearity="tanh", offset_mode="every_step"),
    dict(optimizer="adam", hyper="per-pixel", nonlinearity="identity", offset_mode="init_only"),
]


def case_id(case):
    return "-".join(str(v) for v in case.values())


def case_inputs(case, steps):
    """(problem, learning rates, offsets, training keywords); offset_mode given: paraminit_vs_lr."""
    problem = make_problem(d_out=case.get("d_out", 1), minibatch=case.get("minibatch"), steps=steps)
    scale = LR_SCALE[case["optimizer"]]
    if "offset_mode" in case:
        lrs, offsets = per_layer_learning_rates(X_LR / 40.0, Y_LR * scale, "paraminit_vs_lr", 2)
    else:
        lrs, offsets = per_layer_learning_rates(X_LR * scale, Y_LR * scale, "lr_vs_lr", 2)
    kw = dict(
        nonlinearity=case["nonlinearity"],
        steps=steps,
        offset_mode=case.get("offset_mode", "every_step"),
        optimizer=case["optimizer"],
        optimizer_params=hyperparameters(case["optimizer"], case["hyper"]),
    )
    return problem, lrs, offsets, kw


@needs_c
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_c_kernel_matches_torch_optim(case):
    """Same labels and divergence steps everywhere; every float statistic to 1e-9 on the
    converging pixels that are stable (not chaotic: ``agreement.stable_pixels``, judged
    on the C kernel's runs with perturbed learning rates)."""
    steps = 50
    problem, lrs, offsets, kw = case_inputs(case, steps)
    fused = c_cpu.train(Run(problem, lrs, offsets, **kw))
    ref = reference.train(Run(problem, lrs, offsets, **kw))
    measure, ref_measure = convergence_measure(fused), convergence_measure(ref)
    np.testing.assert_array_equal(measure < 0, ref_measure < 0)
    np.testing.assert_array_equal(fused["diverged_step"], ref["diverged_step"])
    perturbed = [c_cpu.train(Run(problem, lp, offsets, **kw)) for lp in perturbed_learning_rates(lrs)]
    calm = (fused["diverged_step"] < 0) & (measure < 0) & stable_pixels(fused, *perturbed)
    assert calm.sum() >= 3, "the window must hold non-chaotic converging pixels"
    for name in FLOAT_FIELDS:
        np.testing.assert_allclose(fused[name][calm], ref[name][calm], rtol=1e-9, err_msg=name)


def chaotic_inputs(n=150, steps=60):
    """A minibatch paraminit window straddling the boundary, with random per-pixel
    hyperparameters: a pixel given another pixel's values, state or position would show."""
    problem = make_problem(N=12, minibatch=3, steps=steps)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-0.5, 0.5, n), 10 ** rng.uniform(-2, 1.0, n)
    lrs, offsets = per_layer_learning_rates(x, y, "paraminit_vs_lr", 2)
    hyper = {
        "momentum": {"beta": rng.uniform(0.0, 0.95, n)},
        "adam": {
            "beta1": rng.uniform(0.5, 0.95, n),
            "beta2": rng.uniform(0.9, 0.9999, n),
            "eps": 10 ** rng.uniform(-8, -3, n),
        },
    }
    return problem, lrs, offsets, hyper, dict(nonlinearity="tanh", steps=steps, offset_mode="every_step")


def pick(stats, rows):
    return {k: np.asarray(v)[rows] for k, v in stats.items()}


@needs_c
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_results_do_not_depend_on_chunks_threads_or_neighbours(optimizer):
    problem, lrs, offsets, hyper, kw = chaotic_inputs()
    params = hyper[optimizer]
    kw = dict(kw, optimizer=optimizer)
    whole = c_cpu.train(Run(problem, lrs, offsets, threads=2, optimizer_params=params, **kw))
    labels = convergence_measure(whole) < 0
    assert labels.any() and not labels.all(), "the window must hold converging and diverging pixels"
    for threads, chunk in ((1, 150), (2, 7), (3, 1)):
        run = Run(problem, lrs, offsets, threads=threads, optimizer_params=params, **kw)
        again = c_cpu.train(run, chunk=chunk)
        assert same_bits(again, whole).all(), (threads, chunk)
    for rows in ([0], [149], [3, 77, 100], list(range(40, 47))):
        part = c_cpu.train(Run(problem, lrs[rows], offsets[rows], optimizer_params=pick(params, rows), **kw))
        assert same_bits(part, pick(whole, rows)).all(), rows
    # through the dispatcher, as a shard of the frame
    part = dispatch.train_pixels(
        problem,
        lrs[40:47],
        offsets[40:47],
        first_pixel=40,
        device="cpu",
        kernel="fused",
        optimizer_params=pick(params, slice(40, 47)),
        **kw,
    )
    assert same_bits(part, pick(whole, slice(40, 47))).all()


@needs_c
def test_the_optimizer_is_not_ignored():
    """Momentum with beta = 0 is gd bit for bit (pixel by pixel where beta varies); with
    beta = 0.9, or with Adam, nearly every pixel differs from gd and from each other."""
    problem, lrs, offsets, hyper, kw = chaotic_inputs(n=60, steps=40)
    n = len(lrs)
    gd = c_cpu.train(Run(problem, lrs, offsets, **kw))
    labels = convergence_measure(gd) < 0
    assert labels.any() and not labels.all()
    zero = c_cpu.train(
        Run(problem, lrs, offsets, optimizer="momentum", optimizer_params={"beta": np.zeros(n)}, **kw)
    )
    assert same_bits(zero, gd).all()
    beta = np.where(np.arange(n) % 2 == 0, 0.0, 0.9)
    mixed = c_cpu.train(
        Run(problem, lrs, offsets, optimizer="momentum", optimizer_params={"beta": beta}, **kw)
    )
    assert same_bits(pick(mixed, slice(0, None, 2)), pick(gd, slice(0, None, 2))).all()
    assert not same_bits(pick(mixed, slice(1, None, 2)), pick(gd, slice(1, None, 2))).any()
    momentum = c_cpu.train(
        Run(problem, lrs, offsets, optimizer="momentum", optimizer_params={"beta": np.full(n, 0.9)}, **kw)
    )
    adam = c_cpu.train(Run(problem, lrs, offsets, optimizer="adam", optimizer_params=hyper["adam"], **kw))
    for a, b in ((momentum, gd), (adam, gd), (adam, momentum)):
        assert (~same_bits(a, b)).mean() > 0.9


@needs_c
def test_momentum_and_adam_bits_do_not_depend_on_the_build(tmp_path):
    """x86-64-v2 (no FMA instruction: libm's fma; SSE vectors) or aarch64's armv8-a
    against -march=native, on the chaotic window: sqrt and division are IEEE, correctly
    rounded, and the FMAs are written out, so the bits are the same."""
    march = "armv8-a" if platform.machine() in ("aarch64", "arm64") else "x86-64-v2"
    try:
        other = c_cpu.build_variant(march, tmp_path)
    except RuntimeError as err:
        pytest.skip(f"no {march} build: {str(err)[-200:]}")
    problem, lrs, offsets, hyper, kw = chaotic_inputs(n=60, steps=60)
    for optimizer, params in hyper.items():
        run = Run(problem, lrs, offsets, optimizer=optimizer, optimizer_params=params, **kw)
        native = c_cpu.train(run)
        again = c_cpu.train(run, lib=other)
        assert same_bits(again, native).all(), (
            f"{optimizer}: {(~same_bits(again, native)).sum()} pixels differ"
        )


@needs_c
def test_bad_optimizer_arguments_are_refused():
    """By the run the kernel is given (``backend.Run``), before the kernel sees them."""
    problem = make_problem()
    lrs, _ = per_layer_learning_rates(X_LR, Y_LR, "lr_vs_lr", 2)
    kw = dict(nonlinearity="tanh", steps=3, offset_mode="every_step")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        c_cpu.train(Run(problem, lrs, None, optimizer="sgd", **kw))
    with pytest.raises(ValueError, match="takes the hyperparameters"):
        c_cpu.train(
            Run(problem, lrs, None, optimizer="adam", optimizer_params={"beta": np.full(P, 0.9)}, **kw)
        )
    with pytest.raises(ValueError, match="must satisfy"):
        c_cpu.train(
            Run(problem, lrs, None, optimizer="momentum", optimizer_params={"beta": np.full(P, 1.0)}, **kw)
        )
    # Every optimiser reaches the kernel as its contract code.
    assert {f"-DOPT_{name.upper()}={OPTIMIZER_CODES[name]}" for name in OPTIMIZERS} <= set(c_cpu.DEFINES)
    assert all(len(names) <= c_cpu.N_HYPER for names in OPTIMIZERS.values())


def per_pixel_problem(kinds, n=4):
    """A shared problem with the arrays of ``kinds`` given a leading pixel axis."""
    shared = make_problem()
    weights = tuple(np.stack([w] * n) for w in shared.weights) if "weights" in kinds else shared.weights
    X, Y = (np.stack([shared.X] * n), np.stack([shared.Y] * n)) if "data" in kinds else (shared.X, shared.Y)
    return Problem(weights, X, Y, None, frozenset(kinds))


@pytest.mark.parametrize("kinds", [{"data"}, {"weights"}, {"weights", "data"}])
def test_per_pixel_problems_are_refused_with_the_reason(kinds):
    problem = per_pixel_problem(kinds)
    reason = c_cpu.unsupported(problem, "float64", CPU)
    assert reason is not None and "per-pixel randomness" in reason, reason
    assert all(kind in reason for kind in kinds), reason
    assert "torch kernel" in reason
    assert "per-pixel" not in (c_cpu.unsupported(make_problem(), "float64", CPU) or "")
    with pytest.raises(KernelUnsupported, match="per-pixel randomness"):
        dispatch.choose_backend(problem, "float64", "cpu", "fused")
    lrs, _ = per_layer_learning_rates(X_LR[:4], Y_LR[:4], "lr_vs_lr", 2)
    with pytest.raises(ValueError, match="per-pixel randomness"):
        c_cpu.train(Run(problem, lrs, None, nonlinearity="tanh", steps=2, offset_mode="every_step"))
