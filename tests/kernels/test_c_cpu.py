"""The fused backends (kernels.c_cpu, kernels.triton_gpu) against the batched torch backend,
and the dispatcher's choice between them.

CPU: the C kernel (skipped when no C compiler can build it). GPU: the Triton
kernel, run on CPU by Triton's interpreter (TRITON_INTERPRET=1, in a
subprocess because the flag is read when the kernels are defined, at import)
on a tiny grid; skipped when triton is not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kernel_helpers import assert_triton_matches_torch, make_problem
from trainability.boundary.scoring import convergence_measure
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import FLOAT_FIELDS, STAT_FIELDS
from trainability.kernels import c_cpu, dispatch, triton_gpu
from trainability.kernels.agreement import perturbed_learning_rates, stable_pixels
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import KernelUnsupported, select_kernel, train_pixels

HAS_TRITON = triton_gpu.triton_source is not None
CPU = torch.device("cpu")
needs_c = pytest.mark.skipif(
    c_cpu.load_library() is None,
    reason=f"C kernel unavailable: {c_cpu.unsupported(make_problem(), 'float64', CPU)}",
)
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (optional extra 'fused')")

X_LR = np.array([0.05, 0.5, 2.0, 8.0, 0.3, 40.0, 3.0, 12.0])
Y_LR = np.array([0.1, 1.0, 3.0, 0.5, 30.0, 40.0, 12.0, 2.0])

CASES = [
    dict(nonlinearity="tanh", phase_space="lr_vs_lr"),
    dict(nonlinearity="relu", phase_space="lr_vs_lr"),
    dict(nonlinearity="identity", phase_space="lr_vs_lr"),
    dict(nonlinearity="tanh", phase_space="lr_vs_lr", d_out=3),
    dict(nonlinearity="tanh", phase_space="lr_vs_lr", minibatch=4),
    dict(nonlinearity="tanh", phase_space="paraminit_vs_lr", offset_mode="every_step"),
    dict(nonlinearity="tanh", phase_space="paraminit_vs_lr", offset_mode="init_only"),
]


def assert_kernels_agree(a, b, b_perturbed_runs, rtol=1e-9):
    """Same label and divergence step everywhere; every float statistic to rtol on the
    converging pixels that are stable (``agreement.stable_pixels``: not chaotic, where
    two operation orders cannot agree to 1e-9)."""
    ma, mb = convergence_measure(a), convergence_measure(b)
    np.testing.assert_array_equal(ma < 0, mb < 0)
    np.testing.assert_array_equal(a["diverged_step"], b["diverged_step"])
    calm = (b["diverged_step"] < 0) & (mb < 0) & stable_pixels(b, *b_perturbed_runs)
    assert calm.sum() >= 3, "the window must hold non-chaotic converging pixels"
    for name in FLOAT_FIELDS:
        np.testing.assert_allclose(a[name][calm], b[name][calm], rtol=rtol, err_msg=name)


def perturbed_runs(problem, lrs, offsets, **kw):
    return [train_pixels(problem, lp, offsets, **kw) for lp in perturbed_learning_rates(lrs)]


def case_inputs(case, steps):
    problem = make_problem(d_out=case.get("d_out", 1), minibatch=case.get("minibatch"), steps=steps)
    x = X_LR / 40.0 if case["phase_space"] == "paraminit_vs_lr" else X_LR
    lrs, offsets = per_layer_learning_rates(x, Y_LR, case["phase_space"], 2)
    return problem, lrs, offsets


@needs_c
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_c_kernel_matches_torch_kernel(case):
    steps = 40
    problem, lrs, offsets = case_inputs(case, steps)
    kw = dict(
        nonlinearity=case["nonlinearity"],
        steps=steps,
        device="cpu",
        offset_mode=case.get("offset_mode", "every_step"),
    )
    assert_kernels_agree(
        train_pixels(problem, lrs, offsets, kernel="fused", **kw),
        train_pixels(problem, lrs, offsets, kernel="torch", **kw),
        perturbed_runs(problem, lrs, offsets, kernel="torch", **kw),
    )


@needs_c
def test_c_kernel_results_do_not_depend_on_batch_or_threads():
    problem = make_problem(N=12, minibatch=3, steps=25)
    rng = np.random.default_rng(3)
    x, y = 10 ** rng.uniform(-2, 1.5, 150), 10 ** rng.uniform(-2, 1.5, 150)
    lrs, offsets = per_layer_learning_rates(x, y, "paraminit_vs_lr", 2)
    kw = dict(nonlinearity="tanh", steps=25, offset_mode="every_step")
    whole = c_cpu.train(Run(problem, lrs, offsets, threads=2, **kw))
    for threads, chunk in ((1, 150), (2, 7), (3, 1)):
        again = c_cpu.train(Run(problem, lrs, offsets, threads=threads, **kw), chunk=chunk)
        for name in STAT_FIELDS:
            assert np.array_equal(again[name], whole[name], equal_nan=True), (threads, chunk, name)
    for start, stop in ((0, 1), (40, 47), (149, 150)):
        part = train_pixels(
            problem,
            lrs[start:stop],
            offsets[start:stop],
            first_pixel=start,
            device="cpu",
            kernel="fused",
            **kw,
        )
        for name in STAT_FIELDS:
            assert np.array_equal(part[name], whole[name][start:stop], equal_nan=True), name


def test_torch_kernel_results_do_not_depend_on_sharding():
    """The sharding test of test_training, held to the torch kernel explicitly
    (kernel="auto" runs the C kernel on CPU where it builds)."""
    problem = make_problem(N=12, minibatch=3, steps=25)
    rng = np.random.default_rng(3)
    x, y = 10 ** rng.uniform(-2, 1.5, 200), 10 ** rng.uniform(-2, 1.5, 200)
    lrs, _ = per_layer_learning_rates(x, y, "lr_vs_lr", 2)
    kw = dict(nonlinearity="tanh", steps=25, device="cpu", block_pixels=64, kernel="torch")
    whole = train_pixels(problem, lrs, **kw)
    for start, stop in ((0, 7), (60, 70), (100, 199), (199, 200)):
        part = train_pixels(problem, lrs[start:stop], first_pixel=start, **kw)
        for name in STAT_FIELDS:
            assert np.array_equal(part[name], whole[name][start:stop], equal_nan=True), name


def test_kernel_selection_and_fallback(monkeypatch):
    problem = make_problem()
    lrs, _ = per_layer_learning_rates(X_LR, Y_LR, "lr_vs_lr", 2)
    expected = "fused" if c_cpu.load_library() is not None else "torch"
    assert select_kernel(problem, "float64", "cpu") == expected
    assert select_kernel(problem, "float32", "cpu") == "torch"
    assert select_kernel(make_problem(depth=3), "float64", "cpu") == "torch"
    with pytest.raises(ValueError, match="kernel must be one of"):
        train_pixels(problem, lrs, nonlinearity="tanh", steps=3, kernel="cuda-magic")
    with pytest.raises(KernelUnsupported, match="float64 and float64x2"):
        train_pixels(
            problem, lrs, nonlinearity="tanh", steps=3, device="cpu", dtype="float32", kernel="fused"
        )
    # Without the C kernel (no compiler), auto falls back to torch, bit for bit.
    monkeypatch.setattr(c_cpu, "_lib_state", {"lib": None, "why": "test: no compiler"})
    assert select_kernel(problem, "float64", "cpu") == "torch"
    auto = train_pixels(problem, lrs, nonlinearity="tanh", steps=5, device="cpu")
    torch_ = train_pixels(problem, lrs, nonlinearity="tanh", steps=5, device="cpu", kernel="torch")
    for name in STAT_FIELDS:
        assert np.array_equal(auto[name], torch_[name], equal_nan=True)
    with pytest.raises(KernelUnsupported, match="unavailable: test: no compiler"):
        train_pixels(problem, lrs, nonlinearity="tanh", steps=3, device="cpu", kernel="fused")


def test_cuda_selection_needs_no_gpu_and_respects_the_triton_limits(monkeypatch):
    """The defect of the old dispatcher: auto on CUDA took the Triton kernel for any depth-2,
    one-output net, which then refused widths that are not powers of two >= 16."""
    monkeypatch.setattr(triton_gpu, "triton_source", object())  # as if triton were installed
    narrow = make_problem(width=4)
    assert select_kernel(narrow, "float64", "cuda") == "torch"
    with pytest.raises(KernelUnsupported, match="powers of two >= 16, not 4 and 4"):
        select_kernel(narrow, "float64", "cuda", kernel="fused")
    assert select_kernel(make_problem(width=16), "float64", "cuda") == "fused"
    assert select_kernel(make_problem(width=16), "float32", "cuda") == "fused"
    assert select_kernel(make_problem(width=16, d_out=2), "float64", "cuda") == "torch"
    assert select_kernel(make_problem(width=24), "float64", "cuda") == "torch"
    monkeypatch.setattr(triton_gpu, "triton_source", None)
    assert select_kernel(make_problem(width=16), "float64", "cuda") == "torch"
    with pytest.raises(KernelUnsupported, match="needs triton"):
        select_kernel(make_problem(width=16), "float64", "cuda", kernel="fused")
    with pytest.raises(KernelUnsupported, match="no fused kernel for mps"):
        select_kernel(make_problem(width=16), "float64", "mps", kernel="fused")


def test_an_explicit_kernel_that_cannot_run_is_a_config_problem(monkeypatch):
    monkeypatch.setattr(triton_gpu, "triton_source", object())
    exp = {
        "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
        "data": {"size": 5, "target_dim": 1, "seed": 0},
        "training": {"steps": 3, "batch": "full", "dtype": "float64"},
    }
    problems = dispatch.config_problems({"narrow": exp}, "fused", ["cpu", "cuda"])
    assert len(problems) == 1
    assert problems[0].startswith("kernel: 'fused' cannot run experiments.narrow on cuda")
    assert "powers of two >= 16" in problems[0] and "allowed: auto" in problems[0]
    assert dispatch.config_problems({"narrow": exp}, "auto", ["cpu", "cuda"]) == []
    assert dispatch.config_problems({"narrow": exp}, "torch", ["cpu", "cuda"]) == []
    f32 = dict(exp, training={**exp["training"], "dtype": "float32"})
    (problem,) = dispatch.config_problems({"f32": f32}, "fused", ["cpu"])
    assert "experiments.f32 on cpu" in problem and "float64 and float64x2" in problem


TRITON_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from kernel_helpers import make_problem
from trainability.kernels import triton_gpu
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import train_pixels
from trainability.contract.problem import per_layer_learning_rates
out = {}
x = np.array([0.05, 2.0, 8.0, 40.0]); y = np.array([0.1, 3.0, 30.0, 40.0])
cases = [("tanh", "float64", None, "lr_vs_lr", "every_step", False),
         ("tanh", "float64", None, "lr_vs_lr", "every_step", True),
         ("tanh", "float32", None, "lr_vs_lr", "every_step", False),
         ("relu", "float64", 4, "lr_vs_lr", "every_step", False),
         ("tanh", "float64", None, "paraminit_vs_lr", "every_step", False),
         ("identity", "float64", None, "paraminit_vs_lr", "init_only", False)]
steps = 8
for nl, dtype, mb, space, mode, dot in cases:
    problem = make_problem(width=16, N=20, minibatch=mb, steps=steps)
    lrs, offsets = per_layer_learning_rates(x / 40 if space != "lr_vs_lr" else x, y, space, 2)
    kw = dict(nonlinearity=nl, steps=steps, offset_mode=mode, dtype=dtype)
    a = triton_gpu.train(Run(problem, lrs, offsets, device="cpu", **kw), use_dot=dot)
    b = train_pixels(problem, lrs, offsets, device="cpu", kernel="torch", **kw)
    out[f"{nl}-{dtype}-{mb}-{space}-{mode}-dot{dot}"] = {
        "fused": {k: v.tolist() for k, v in a.items()}, "torch": {k: v.tolist() for k, v in b.items()}}
print(json.dumps(out))
"""


@needs_triton
def test_triton_kernel_matches_torch_kernel_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT, str(Path(__file__).resolve().parents[1])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 6
    for name, pair in results.items():
        assert_triton_matches_torch(name, pair, "float32" if "float32" in name else "float64")


AOT_SCRIPT = r"""
from trainability.kernels import triton_gpu
for dt, short in (("float64", "fp64"), ("float32", "fp32")):
    compiled, usage = triton_gpu.compile_ahead(dt, MB=16, offset_mode="every_step", arch=90)
    print(short, len(compiled.asm["cubin"]))
"""


@needs_triton
def test_triton_kernel_compiles_for_h100():
    """Ahead-of-time compilation to an sm_90 cubin (no GPU needed): catches what the
    interpreter does not check (types of loop-carried values, libdevice, tl.dot)."""
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run(
        [sys.executable, "-c", AOT_SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("triton's ptxas is unavailable")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = dict(line.split() for line in proc.stdout.strip().splitlines()[-2:])
    assert set(sizes) == {"fp64", "fp32"} and all(int(v) > 0 for v in sizes.values())


@needs_triton
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_triton_kernel_on_cuda_matches_torch_kernel(dtype):
    """The compiled kernel on a real GPU (skipped without one)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for case in CASES:
        if case.get("d_out", 1) != 1:
            continue
        steps = 40
        problem, lrs, offsets = case_inputs(dict(case), steps)
        problem = make_problem(width=16, N=20, minibatch=case.get("minibatch"), steps=steps)
        kw = dict(
            nonlinearity=case["nonlinearity"],
            steps=steps,
            device="cuda",
            dtype=dtype,
            offset_mode=case.get("offset_mode", "every_step"),
        )
        a = train_pixels(problem, lrs, offsets, kernel="fused", **kw)
        b = train_pixels(problem, lrs, offsets, kernel="torch", **kw)
        b2 = perturbed_runs(problem, lrs, offsets, kernel="torch", **kw)
        if dtype == "float64":
            assert_kernels_agree(a, b, b2)
        else:
            np.testing.assert_array_equal(convergence_measure(a) < 0, convergence_measure(b) < 0)


def test_double_double_runs_on_the_cpu_only_and_the_config_is_told_so(monkeypatch):
    monkeypatch.setattr(triton_gpu, "triton_source", object())
    exp = {
        "model": {"width": 16, "depth": 2, "nonlinearity": "tanh"},
        "data": {"size": 5, "target_dim": 1, "seed": 0},
        "training": {"steps": 3, "batch": "full", "dtype": "float64x2"},
    }
    assert dispatch.config_problems({"deep": exp}, "auto", ["cpu"]) == []
    (on_gpu,) = dispatch.config_problems({"deep": exp}, "auto", ["cpu", "cuda"])
    assert on_gpu.startswith("kernel: 'auto' cannot run experiments.deep on cuda")
    assert "float64x2 (double-double): the C kernel, on CPU" in on_gpu and "TRAINABILITY_DEVICE=cpu" in on_gpu
    (torch_named,) = dispatch.config_problems({"deep": exp}, "torch", ["cpu"])
    assert "kernel: 'torch' cannot run experiments.deep on cpu" in torch_named
    assert select_kernel(make_problem(width=16), "float64x2", "cpu") == "fused"
