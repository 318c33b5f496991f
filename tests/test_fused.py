"""The fused kernels (trainability.fused) against the batched torch kernel.

CPU: the C kernel (skipped when no C compiler can build it). GPU: the Triton
kernel, run on CPU by Triton's interpreter (TRITON_INTERPRET=1, in a
subprocess because the flag is read when the kernel is defined) on a tiny
grid; skipped when triton is not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainability import fused
from trainability.scoring import convergence_measure
from trainability.training import STAT_FIELDS, per_layer_learning_rates, selected_kernel, train_pixels

sys.path.insert(0, str(Path(__file__).parent))
from test_training import make_problem  # noqa: E402

needs_c = pytest.mark.skipif(not fused.cpu_kernel_available(),
                             reason=f"C kernel unavailable: {fused.cpu_kernel_unavailable_reason()}")

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


def not_chaotic(b, b_perturbed, rtol=1e-11):
    """Pixels whose statistics move by <= rtol when the learning rates move by 1e-13
    (relative). Elsewhere the dynamics amplify any rounding difference, so two
    kernels with different operation orders cannot agree to 1e-9 there."""
    ok = np.ones(len(b["sum_u"]), dtype=bool)
    for name in STAT_FIELDS[:-1]:
        ok &= np.abs(b_perturbed[name] - b[name]) <= rtol * np.abs(b[name])
    return ok


def assert_kernels_agree(a, b, b_perturbed, rtol=1e-9):
    """Same label everywhere; same statistics to rtol on converging, non-chaotic pixels."""
    ma, mb = convergence_measure(a), convergence_measure(b)
    np.testing.assert_array_equal(ma < 0, mb < 0)
    np.testing.assert_array_equal(a["diverged_step"], b["diverged_step"])
    calm = (b["diverged_step"] < 0) & (mb < 0) & not_chaotic(b, b_perturbed)
    assert calm.sum() >= 3, "the window must hold non-chaotic converging pixels"
    for name in STAT_FIELDS[:-1]:
        np.testing.assert_allclose(a[name][calm], b[name][calm], rtol=rtol, err_msg=name)


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
    kw = dict(nonlinearity=case["nonlinearity"], steps=steps, device="cpu",
              offset_mode=case.get("offset_mode", "every_step"))
    assert_kernels_agree(train_pixels(problem, lrs, offsets, kernel="fused", **kw),
                         train_pixels(problem, lrs, offsets, kernel="torch", **kw),
                         train_pixels(problem, lrs * (1 + 1e-13), offsets, kernel="torch", **kw))


@needs_c
def test_c_kernel_results_do_not_depend_on_batch_or_threads():
    problem = make_problem(N=12, minibatch=3, steps=25)
    rng = np.random.default_rng(3)
    x, y = 10 ** rng.uniform(-2, 1.5, 150), 10 ** rng.uniform(-2, 1.5, 150)
    lrs, offsets = per_layer_learning_rates(x, y, "paraminit_vs_lr", 2)
    kw = dict(nonlinearity="tanh", steps=25, offset_mode="every_step")
    whole = fused.train_pixels_cpu(problem, lrs, offsets, threads=2, **kw)
    for threads, chunk in ((1, 150), (2, 7), (3, 1)):
        again = fused.train_pixels_cpu(problem, lrs, offsets, threads=threads, chunk=chunk, **kw)
        for name in STAT_FIELDS:
            assert np.array_equal(again[name], whole[name], equal_nan=True), (threads, chunk, name)
    for start, stop in ((0, 1), (40, 47), (149, 150)):
        part = train_pixels(problem, lrs[start:stop], offsets[start:stop], first_pixel=start,
                            device="cpu", kernel="fused", **kw)
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
    expected = "fused" if fused.cpu_kernel_available() else "torch"
    assert selected_kernel("cpu", "float64", problem, "tanh") == expected
    assert selected_kernel("cpu", "float32", problem, "tanh") == "torch"
    assert selected_kernel("cpu", "float64", make_problem(depth=3), "tanh") == "torch"
    with pytest.raises(ValueError, match="kernel must be one of"):
        train_pixels(problem, lrs, nonlinearity="tanh", steps=3, kernel="cuda-magic")
    with pytest.raises(ValueError, match="float64 depth-2"):
        train_pixels(problem, lrs, nonlinearity="tanh", steps=3, device="cpu", dtype="float32", kernel="fused")
    # Without the C kernel (no compiler), auto falls back to torch, bit for bit.
    monkeypatch.setattr(fused, "_lib_state", {"lib": None, "why": "test"})
    assert selected_kernel("cpu", "float64", problem, "tanh") == "torch"
    auto = train_pixels(problem, lrs, nonlinearity="tanh", steps=5, device="cpu")
    torch_ = train_pixels(problem, lrs, nonlinearity="tanh", steps=5, device="cpu", kernel="torch")
    for name in STAT_FIELDS:
        assert np.array_equal(auto[name], torch_[name], equal_nan=True)
    with pytest.raises(RuntimeError, match="unavailable"):
        train_pixels(problem, lrs, nonlinearity="tanh", steps=3, device="cpu", kernel="fused")


TRITON_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_training import make_problem
from trainability import fused
from trainability.training import per_layer_learning_rates, train_pixels
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
    a = fused.train_pixels_gpu(problem, lrs, offsets, device="cpu", use_dot=dot, **kw)
    b = train_pixels(problem, lrs, offsets, device="cpu", kernel="torch", **kw)
    out[f"{nl}-{dtype}-{mb}-{space}-{mode}-dot{dot}"] = {
        "fused": {k: v.tolist() for k, v in a.items()}, "torch": {k: v.tolist() for k, v in b.items()}}
print(json.dumps(out))
"""


@pytest.mark.skipif(not fused.triton_available(), reason="triton is not installed (optional extra 'fused')")
def test_triton_kernel_matches_torch_kernel_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", TRITON_SCRIPT, str(Path(__file__).parent)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 6
    for name, pair in results.items():
        a = {k: np.asarray(v) for k, v in pair["fused"].items()}
        b = {k: np.asarray(v) for k, v in pair["torch"].items()}
        ma, mb = convergence_measure(a), convergence_measure(b)
        np.testing.assert_array_equal(ma < 0, mb < 0, err_msg=name)
        np.testing.assert_array_equal(a["diverged_step"], b["diverged_step"], err_msg=name)
        calm = (b["diverged_step"] < 0) & (mb < 0)
        assert calm.any(), name
        rtol = 1e-4 if "float32" in name else 1e-9
        for field in STAT_FIELDS[:-1]:
            np.testing.assert_allclose(a[field][calm], b[field][calm], rtol=rtol, err_msg=f"{name} {field}")


AOT_SCRIPT = r"""
import sys
import triton
from triton.backends.compiler import GPUTarget
from trainability import fused
kernel = fused._define_triton_kernels()
for dt in ("fp64", "fp32"):
  ptr = "*" + dt
  sig = {"X_ptr": ptr, "Y_ptr": ptr, "W0_ptr": ptr, "W1_ptr": ptr, "LR_ptr": "*fp64", "OFF_ptr": "*fp64",
         "MB_ptr": "*i64", "STATS_ptr": "*fp64", "DIV_ptr": "*i64", "N": "i32", "steps": "i32",
         "tail_from": "i32", "tail_count": "i32"}
  consts = dict(MB=16, MBP=16, HAS_OFF=True, OFF_EVERY=True, PHI=0, DIN=16, H=16, RB=16, USE_DOT=True,
                USE_LIBDEVICE=True)
  sig.update({k: "constexpr" for k in consts})
  compiled = triton.compile(triton.compiler.ASTSource(fn=kernel, signature=sig, constexprs=consts),
                            target=GPUTarget("cuda", 90, 32))
  print(dt, len(compiled.asm["cubin"]))
"""


@pytest.mark.skipif(not fused.triton_available(), reason="triton is not installed (optional extra 'fused')")
def test_triton_kernel_compiles_for_h100():
    """Ahead-of-time compilation to an sm_90 cubin (no GPU needed): catches what the
    interpreter does not check (types of loop-carried values, libdevice, tl.dot)."""
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", AOT_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("triton's ptxas is unavailable")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = dict(line.split() for line in proc.stdout.strip().splitlines()[-2:])
    assert set(sizes) == {"fp64", "fp32"} and all(int(v) > 0 for v in sizes.values())


@pytest.mark.skipif(not fused.triton_available(), reason="triton is not installed (optional extra 'fused')")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_triton_kernel_on_cuda_matches_torch_kernel(dtype):
    """The compiled kernel on a real GPU (skipped without one)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for case in CASES:
        if case.get("d_out", 1) != 1:
            continue
        steps = 40
        problem, lrs, offsets = case_inputs(dict(case), steps)
        problem = make_problem(width=16, N=20, minibatch=case.get("minibatch"), steps=steps)
        kw = dict(nonlinearity=case["nonlinearity"], steps=steps, device="cuda", dtype=dtype,
                  offset_mode=case.get("offset_mode", "every_step"))
        a = train_pixels(problem, lrs, offsets, kernel="fused", **kw)
        b = train_pixels(problem, lrs, offsets, kernel="torch", **kw)
        b2 = train_pixels(problem, lrs * (1 + 1e-13), offsets, kernel="torch", **kw)
        if dtype == "float64":
            assert_kernels_agree(a, b, b2)
        else:
            np.testing.assert_array_equal(convergence_measure(a) < 0, convergence_measure(b) < 0)
