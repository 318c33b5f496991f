"""Momentum and Adam in the fused Triton kernel (kernels.triton_gpu): agreement with the autograd
reference (torch.optim's SGD and Adam) and bitwise properties under Triton's interpreter (on CPU,
in one subprocess: TRITON_INTERPRET is read when the kernels are defined), sm_90 compilation of
the optimisers' default variants without a GPU, and what the backend refuses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kernel_helpers import make_problem
from trainability.boundary.scoring import convergence_measure
from trainability.contract.problem import Problem
from trainability.contract.statistics import STAT_FIELDS
from trainability.kernels import triton_gpu
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import select_kernel

needs_triton = pytest.mark.skipif(triton_gpu.triton_source is None, reason="triton is not installed")

# optimizer, dtype, nonlinearity, minibatch, phase space, offset mode, knobs (None: the defaults).
# SCRIPT's bitwise checks reuse the first two runs (momentum's and Adam's default variants).
AGREEMENT_CASES = [
    ("momentum", "float64", "tanh", None, "lr_vs_lr", "every_step", None),
    ("adam", "float64", "tanh", None, "lr_vs_lr", "every_step", None),
    ("adam", "float64", "relu", 5, "paraminit_vs_lr", "every_step", dict(pixels=8, unroll=1)),
    ("momentum", "float64", "identity", 6, "paraminit_vs_lr", "init_only", dict(pixels=8, rows=32)),
    ("adam", "float32", "tanh", None, "lr_vs_lr", "every_step", None),
]

SCRIPT = r"""
import json, sys
import numpy as np
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from kernel_helpers import make_problem
from trainability.kernels import reference, triton_gpu
from trainability.kernels.backend import Run
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
steps, P = 30, 8
# Per-pixel hyperparameters, varying within one program; beta 0 on pixel 2 (as gd).
HYPER = {"momentum": {"beta": [0.9, 0.9, 0.0, 0.5, 0.9, 0.95, 0.9, 0.7]},
         "adam": {"beta1": [0.9, 0.5, 0.0, 0.9, 0.8, 0.95, 0.9, 0.7],
                  "beta2": [0.999, 0.9, 0.99, 0.95, 0.999, 0.99, 0.9, 0.999],
                  "eps": [1e-8, 1e-3, 1e-8, 1e-6, 1e-8, 1e-4, 1e-8, 1e-8]}}
GRID = {"momentum": ([0.05, 2.0, 8.0, 40.0, 300.0, 3.0, 12.0, 150.0],
                     [0.1, 3.0, 30.0, 40.0, 300.0, 12.0, 2.0, 1.0]),
        "adam": ([1e-3, 0.03, 0.3, 3.0, 0.01, 0.1, 1.0, 30.0], [1e-3, 0.1, 1.0, 10.0, 0.3, 0.03, 3.0, 100.0])}
def case(opt, space, mb=None, n=16):
    x, y = (np.array(v) for v in GRID[opt])
    lrs, offsets = per_layer_learning_rates(x / 100 if space != "lr_vs_lr" else x, y, space, 2)
    hp = {k: np.array(v) for k, v in HYPER[opt].items()}
    return make_problem(width=16, N=n, minibatch=mb, steps=steps), lrs, offsets, hp
def run_of(problem, lrs, offsets, opt, hp, dtype="float64", nl="tanh", mode="every_step", **kw):
    return Run(problem, lrs, offsets, nonlinearity=nl, steps=steps, offset_mode=mode, dtype=dtype,
               device="cpu", optimizer=opt, optimizer_params=hp, **kw)
def fused(problem, lrs, offsets, opt, hp, dtype="float64", nl="tanh", mode="every_step", block_pixels=None,
          **knobs):
    run = run_of(problem, lrs, offsets, opt, hp, dtype, nl, mode, block_pixels=block_pixels)
    return triton_gpu.train(run, **knobs)
lists = lambda d: {k: np.asarray(v).tolist() for k, v in d.items()}
pixel = lambda d, p: {k: v[p:p + 1] for k, v in d.items()}
def same(a, b, lo=0):  # the fields of a that differ from b's pixels lo, lo + 1, ...
    return [n for n in STAT_FIELDS if not np.array_equal(a[n], b[n][lo:lo + len(a[n])], equal_nan=True)]
out, runs = {"agreement": []}, []
for opt, dtype, nl, mb, space, mode, knobs in json.loads(sys.argv[2]):
    problem, lrs, offsets, hp = case(opt, space, mb)
    a = fused(problem, lrs, offsets, opt, hp, dtype, nl, mode, **(knobs or {}))
    runs.append(a)
    b = reference.train(run_of(problem, lrs, offsets, opt, hp, dtype, nl, mode))
    out["agreement"].append({"fused": lists(a), "reference": lists(b)})
# Adam, per-pixel betas: bit for bit whatever the launch size or the pixels' place in their programs.
problem, lrs, offsets, hp = case("adam", "lr_vs_lr")
whole = runs[1]  # the same run with the defaults (4 pixels per program)
# Launches of 3 pixels: each pixel sits elsewhere in its program, beside other pixels or padding.
out["failures"] = same(fused(problem, lrs, offsets, "adam", hp, block_pixels=3), whole)
# momentum with beta 0 is gd, bit for bit (pixel 2 of the mixed run too); beta 0.9 is not.
problem, lrs, offsets, hp = case("momentum", "lr_vs_lr")
gd = fused(problem, lrs, offsets, "gd", {})
zero = fused(problem, lrs, offsets, "momentum", {"beta": np.zeros(P)})
mixed = runs[0]  # the same grid and betas
out["beta0_vs_gd"] = same(zero, gd)
out["mixed_pixel2_vs_gd"] = same(pixel(mixed, 2), gd, 2)
out["beta09_equal_gd"] = [p for p in (0, 1, 4, 6) if not same(pixel(mixed, p), gd, p)]
out["gd"] = lists(gd)
print(json.dumps(out))
"""

AOT_SCRIPT = r"""
import json
from trainability.kernels import triton_gpu
for optimizer in ("momentum", "adam"):
    for dtype in ("float64", "float32"):
        compiled, usage = triton_gpu.compile_ahead(dtype, optimizer=optimizer)
        v = triton_gpu.variant(dtype, optimizer)
        print(json.dumps(dict(optimizer=optimizer, dtype=dtype, variant=v, **usage)), flush=True)
"""


def run_script(script, *args, interpret=True):
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    env.pop("TRITON_INTERPRET", None)
    env.update({"TRITON_INTERPRET": "1"} if interpret else {})
    env = {k: v for k, v in env.items() if not k.startswith("TRAINABILITY_TRITON_")}
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=600
    )


def assert_matches_reference(name: str, pair: dict, labels_only: bool) -> None:
    """The same labels (converged or not), and unless ``labels_only`` the same divergence steps
    and the calm pixels (converged, never diverged; there must be some) to 1e-9."""
    a = {k: np.asarray(v) for k, v in pair["fused"].items()}
    b = {k: np.asarray(v) for k, v in pair["reference"].items()}
    ma, mb = convergence_measure(a), convergence_measure(b)
    np.testing.assert_array_equal(ma < 0, mb < 0, err_msg=name)
    assert (mb < 0).any() and (mb > 0).any(), f"{name}: the grid should hold both labels"
    if labels_only:
        return
    np.testing.assert_array_equal(a["diverged_step"], b["diverged_step"], err_msg=name)
    calm = (b["diverged_step"] < 0) & (mb < 0)
    assert calm.any(), name
    for field in STAT_FIELDS[:-1]:
        np.testing.assert_allclose(a[field][calm], b[field][calm], rtol=1e-9, err_msg=f"{name} {field}")


@pytest.fixture(scope="module")
def interpreted():
    if triton_gpu.triton_source is None:
        pytest.skip("triton is not installed")
    proc = run_script(SCRIPT, str(Path(__file__).resolve().parents[1]), json.dumps(AGREEMENT_CASES))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_momentum_and_adam_match_torch_optim_in_interpreter(interpreted):
    assert len(interpreted["agreement"]) == len(AGREEMENT_CASES)
    for case, pair in zip(AGREEMENT_CASES, interpreted["agreement"]):
        assert_matches_reference(str(case), pair, labels_only=case[1] == "float32")
    diverged = [np.asarray(p["reference"]["diverged_step"]) for p in interpreted["agreement"]]
    assert any((d >= 0).any() for d in diverged), "some pixel should diverge"


def test_per_pixel_betas_are_invariant_to_launch_size_in_interpreter(interpreted):
    assert interpreted["failures"] == []


def test_momentum_with_beta_zero_is_gd_bit_for_bit_in_interpreter(interpreted):
    assert interpreted["beta0_vs_gd"] == []
    assert interpreted["mixed_pixel2_vs_gd"] == []  # beta 0 beside pixels with beta 0.9
    assert interpreted["beta09_equal_gd"] == []  # the optimiser is not ignored
    assert (np.asarray(interpreted["gd"]["diverged_step"]) >= 0).any()


@needs_triton
def test_optimizer_defaults_compile_for_sm90_without_spilling():
    proc = run_script(AOT_SCRIPT, interpret=False)
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("triton's ptxas is unavailable")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    assert len(rows) == 4
    for row in rows:
        print(row)  # the register table, with -s
        assert row["stack_bytes"] == 0 and row["spill_stores"] == 0, row
        extra = triton_gpu.OPTIMIZER_DEFAULTS.get((row["dtype"], row["optimizer"]), {})
        assert row["variant"] == dict(triton_gpu.DEFAULTS[row["dtype"]], **extra), row


def test_gd_keeps_its_variant_and_identity_and_the_optimiser_defaults_apply(monkeypatch):
    for env in triton_gpu.KNOB_ENV.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert (
        triton_gpu.variant("float64", "gd") == triton_gpu.variant("float64") == triton_gpu.DEFAULTS["float64"]
    )
    assert triton_gpu.variant("float64", "adam")["pixels"] == 4
    assert triton_gpu.variant("float64", "adam", pixels=8)["pixels"] == 8  # a knob given wins
    assert triton_gpu.variant("float32", "adam") == triton_gpu.DEFAULTS["float32"]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        triton_gpu.variant("float64", "sgd")
    if triton_gpu.triton_source is not None:
        gd = triton_gpu.build_identity("float64")
        assert gd == triton_gpu.build_identity("float64", "gd") and "pixels=8" in gd
        assert triton_gpu.build_identity("float32", "momentum") == triton_gpu.build_identity("float32")
        assert "pixels=4" in triton_gpu.build_identity("float64", "adam")
        two = dict(
            problem=make_problem(width=16), learning_rates=np.ones((2, 2)), nonlinearity="tanh", steps=2
        )
        adam = {"beta1": [0.9, 0.8], "beta2": [0.99, 0.9], "eps": [1e-8, 1]}
        hp = Run(**two, optimizer="adam", optimizer_params=adam).hyperparameters()  # the kernel's layout
        np.testing.assert_array_equal(hp, [[0.9, 0.99, 1e-8], [0.8, 0.9, 1.0]])
        with pytest.raises(ValueError, match="hyperparameters"):
            Run(**two, optimizer="momentum", optimizer_params={})


def test_per_pixel_randomness_runs_on_the_torch_kernel(monkeypatch):
    monkeypatch.setattr(triton_gpu, "triton_source", object())  # as if triton were installed
    shared = make_problem(width=16)
    per_pixel = Problem(tuple(W[None].repeat(3, 0) for W in shared.weights), shared.X, shared.Y, None,
                        frozenset({"weights"}))  # fmt: skip
    assert triton_gpu.unsupported(shared, "float64", torch.device("cuda")) is None
    reason = triton_gpu.unsupported(per_pixel, "float64", torch.device("cuda"))
    assert reason and "data.per_pixel" in reason and "shares one draw" in reason
    assert select_kernel(per_pixel, "float64", "cuda") == "torch"
    narrow = make_problem(width=8)
    assert "powers of two" in triton_gpu.unsupported(narrow, "float64", torch.device("cuda"))
