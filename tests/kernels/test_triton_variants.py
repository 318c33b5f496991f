"""The Triton kernel's variants (knobs of kernels.triton_gpu): agreement with the torch kernel
and bitwise invariance under Triton's interpreter (on CPU, in subprocesses: TRITON_INTERPRET is
read when the kernels are defined), sm_90 compilation without a GPU, the sweep's dry run, and
the invariance on a real GPU (skipped without one)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kernel_helpers import assert_triton_matches_torch, make_problem
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
from trainability.kernels import triton_gpu
from trainability.kernels.backend import Run

ROOT = Path(__file__).resolve().parents[2]
needs_triton = pytest.mark.skipif(triton_gpu.triton_source is None, reason="triton is not installed")

# nonlinearity, dtype, minibatch, phase space, offset mode, knobs
AGREEMENT_CASES = [
    ("tanh", "float64", None, "lr_vs_lr", "every_step", dict(pixels=1, rows=16, dot=1)),
    ("tanh", "float64", None, "lr_vs_lr", "every_step", dict(pixels=4, rows=16, dot=1, unroll=2)),
    ("tanh", "float64", None, "lr_vs_lr", "every_step", dict(pixels=4, rows=32, dot=1)),
    ("tanh", "float64", None, "lr_vs_lr", "every_step", dict(pixels=4, rows=16, dot=0, unroll=2)),
    ("tanh", "float32", None, "lr_vs_lr", "every_step", dict(pixels=4, rows=32, dot=1)),
    ("tanh", "float32", None, "lr_vs_lr", "every_step", dict(pixels=4, rows=16, dot=1, unroll=2)),
    ("tanh", "float32", None, "lr_vs_lr", "every_step", dict(pixels=1, rows=16, dot=0)),
    ("relu", "float64", 5, "lr_vs_lr", "every_step", dict(pixels=4, rows=16, dot=1)),
    ("relu", "float64", 20, "lr_vs_lr", "every_step", dict(pixels=2, rows=16, dot=1)),
    ("identity", "float64", None, "paraminit_vs_lr", "init_only", dict(pixels=4, rows=32, dot=1)),
    ("tanh", "float64", None, "paraminit_vs_lr", "every_step", dict(pixels=4, rows=16, dot=0)),
    ("tanh", "float64", 6, "paraminit_vs_lr", "every_step", dict(pixels=2, rows=32, dot=1)),
]

AGREEMENT_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from kernel_helpers import make_problem
from trainability.kernels import triton_gpu
from trainability.kernels.backend import Run
from trainability.kernels.dispatch import train_pixels
from trainability.contract.problem import per_layer_learning_rates
x = np.array([0.05, 2.0, 8.0, 40.0, 0.5, 3.0, 12.0]); y = np.array([0.1, 3.0, 30.0, 40.0, 1.0, 12.0, 2.0])
steps, out = 8, []
for nl, dtype, mb, space, mode, knobs in json.loads(sys.argv[2]):
    problem = make_problem(width=16, N=40, minibatch=mb, steps=steps)
    lrs, offsets = per_layer_learning_rates(x / 40 if space != "lr_vs_lr" else x, y, space, 2)
    kw = dict(nonlinearity=nl, steps=steps, offset_mode=mode, dtype=dtype)
    a = triton_gpu.train(Run(problem, lrs, offsets, device="cpu", **kw), pixels=knobs["pixels"],
                         rows=knobs["rows"], use_dot=knobs["dot"], unroll=knobs.get("unroll", 1))
    b = train_pixels(problem, lrs, offsets, device="cpu", kernel="torch", **kw)
    out.append({"fused": {k: v.tolist() for k, v in a.items()},
                "torch": {k: v.tolist() for k, v in b.items()}})
print(json.dumps(out))
"""

INVARIANCE_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from kernel_helpers import make_problem
from trainability.kernels import triton_gpu
from trainability.kernels.backend import Run
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
P, steps = 11, 6
problem = make_problem(width=16, N=36, minibatch=3, steps=steps)  # 16-row chunks: a pair, a part
rng = np.random.default_rng(3)
lrs, offsets = per_layer_learning_rates(10 ** rng.uniform(-2, 1.5, P), 10 ** rng.uniform(-1, 1.5, P),
                                        "paraminit_vs_lr", 2)
offsets = offsets / 30
def run(dtype, knobs, lo=0, hi=P, block_pixels=None):
    at = Run(problem, lrs[lo:hi], offsets[lo:hi], nonlinearity="tanh", steps=steps, offset_mode="every_step",
             dtype=dtype, device="cpu", block_pixels=block_pixels)
    return triton_gpu.train(at, **knobs)
def same(a, b, lo=0):
    return [n for n in STAT_FIELDS if not np.array_equal(a[n], b[n][lo:lo + len(a[n])], equal_nan=True)]
failures, close = [], {}
for dtype, knobs in (("float64", dict(pixels=4, rows=16, use_dot=True, unroll=2)),
                     ("float32", dict(pixels=4, rows=32, use_dot=False, unroll=1)),
                     ("float64", dict(pixels=2, rows=16, use_dot=True, unroll=1))):
    whole = run(dtype, knobs)
    tries = [("block", 0, run(dtype, knobs, block_pixels=b)) for b in (5, 3)]
    tries += [(f"part {lo}:{hi}", lo, run(dtype, knobs, lo, hi)) for lo, hi in ((3, 9), (10, 11))]
    # unroll keeps the order of the chunks, so it keeps the bits too
    tries.append(("unroll", 0, run(dtype, dict(knobs, unroll=3 - knobs["unroll"]))))
    for label, lo, part in tries:
        if same(part, whole, lo):
            failures.append(f"{dtype} {knobs} {label}: {same(part, whole, lo)}")
    one = run(dtype, dict(knobs, pixels=1))
    rel = np.abs(one["loss_final"] - whole["loss_final"]) / np.abs(whole["loss_final"])
    close[f"{dtype} {knobs}"] = [float(np.nanmax(rel)), not same(one, whole)]
print(json.dumps({"failures": failures, "pixels_1_vs_group": close}))
"""

# Every variant family, for AOT compilation: knobs and case (nonlinearity, minibatch, offset mode).
AOT_FAMILIES = [
    (dict(), ("tanh", 0, None)),
    (dict(pixels=1, rows=16, warps=4), ("tanh", 0, None)),
    (dict(pixels=4, rows=32, warps=8), ("tanh", 0, None)),
    (dict(pixels=16, rows=16, warps=16), ("tanh", 0, None)),
    (dict(pixels=1, rows=16, warps=4, dot=0), ("tanh", 0, None)),
    (dict(tanh="exp"), ("tanh", 0, None)),
    (dict(pixels=4, warps=4, unroll=4), ("tanh", 0, None)),
    (dict(f32dot="tf32x3"), ("tanh", 0, None)),
    (dict(), ("relu", 4, "every_step")),
    (dict(pixels=4, rows=32, warps=8), ("identity", 20, "init_only")),
]

AOT_SCRIPT = r"""
import json, sys
from trainability.kernels import triton_gpu
for knobs, (nl, mb, mode) in json.loads(sys.argv[1]):
    for dtype in ("float64", "float32"):
        compiled, usage = triton_gpu.compile_ahead(dtype, nonlinearity=nl, MB=mb, offset_mode=mode, **knobs)
        v = triton_gpu.variant(dtype, **knobs)
        print(json.dumps(dict(dtype=dtype, variant=v, case=[nl, mb, mode], cubin=len(compiled.asm["cubin"]),
                              **usage)), flush=True)
"""


def run_script(script, *args, interpret=True):
    env = dict(os.environ, TRITON_DEFAULT_FP_FUSION="1")
    env.pop("TRITON_INTERPRET", None)
    env.update({"TRITON_INTERPRET": "1"} if interpret else {})
    env = {k: v for k, v in env.items() if not k.startswith("TRAINABILITY_TRITON_")}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=600
    )
    return proc


@needs_triton
def test_every_variant_family_matches_the_torch_kernel_in_interpreter():
    proc = run_script(AGREEMENT_SCRIPT, str(Path(__file__).resolve().parents[1]), json.dumps(AGREEMENT_CASES))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(AGREEMENT_CASES)
    for case, pair in zip(AGREEMENT_CASES, results):
        assert_triton_matches_torch(str(case), pair, case[1])


@needs_triton
def test_results_do_not_depend_on_launch_size_grouping_or_tail_in_interpreter():
    """For a fixed variant, bit for bit. Across ``pixels`` the interpreter's bits differ (numpy's
    summation order depends on the array's shape), so that is only held to rounding."""
    proc = run_script(INVARIANCE_SCRIPT, str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failures"] == []
    for name, (max_rel, _bitwise) in result["pixels_1_vs_group"].items():
        assert max_rel <= (1e-5 if "float32" in name else 1e-12), name


@needs_triton
def test_every_variant_family_compiles_for_sm90_without_spilling_by_default():
    proc = run_script(AOT_SCRIPT, json.dumps(AOT_FAMILIES), interpret=False)
    if proc.returncode != 0 and "ptxas" in proc.stderr and "not found" in proc.stderr.lower():
        pytest.skip("triton's ptxas is unavailable")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    assert len(rows) == 2 * len(AOT_FAMILIES)
    for row in rows:
        print(row)  # the register table, with -s
        assert row["cubin"] > 0
    for dtype in ("float64", "float32"):
        default = [r for r in rows if r["dtype"] == dtype and r["variant"] == triton_gpu.variant(dtype)]
        assert default and all(r.get("stack_bytes", 0) == 0 for r in default), default


def test_knobs_come_from_arguments_then_environment_then_defaults(monkeypatch):
    for env in triton_gpu.KNOB_ENV.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert triton_gpu.variant("float64") == triton_gpu.DEFAULTS["float64"]
    monkeypatch.setenv("TRAINABILITY_TRITON_PIXELS", "2")
    monkeypatch.setenv("TRAINABILITY_TRITON_TANH", "exp")
    assert triton_gpu.variant("float32", rows=32) == dict(
        triton_gpu.DEFAULTS["float32"], pixels=2, rows=32, tanh="exp"
    )
    assert triton_gpu.variant("float32", pixels=16)["pixels"] == 16
    assert triton_gpu.variant("float64", dot=0, pixels=None)["pixels"] == 2  # from the environment
    monkeypatch.delenv("TRAINABILITY_TRITON_PIXELS")
    assert triton_gpu.variant("float64", dot=0) == dict(
        triton_gpu.DEFAULTS["float64"], dot=0, tanh="exp", **triton_gpu.NO_DOT_DEFAULTS
    )
    with pytest.raises(ValueError, match="rows=24"):
        triton_gpu.variant("float64", rows=24)
    with pytest.raises(ValueError, match="unknown Triton knobs"):
        triton_gpu.variant("float64", block=3)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_gpu.variant("float64", tanh="libdevice")["tanh"] == "exp"  # no libdevice there
    assert triton_gpu.launch_pixels(torch.device("cpu"), 8) == triton_gpu.INTERPRETER_LAUNCH_PIXELS
    assert triton_gpu.launch_pixels(torch.device("cpu"), 8, block_pixels=5) == 5


@needs_triton
def test_build_identity_names_every_knob(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    identity = triton_gpu.build_identity("float64", rows=32)
    assert identity.startswith("triton ") and "rows=32" in identity
    assert all(f"{k}=" in identity for k in triton_gpu.KNOB_ENV)
    assert identity != triton_gpu.build_identity("float64", pixels=4)


def test_sweep_dry_run_writes_its_report(tmp_path):
    out = tmp_path / "sweep.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "workflow"), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.triton_sweep", "--dry", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    if triton_gpu.triton_source is None:
        pytest.skip("triton is not installed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["schema"].startswith("trainability-triton-sweep") and report["dry"]
    *measured, bad = report["variants"]
    assert "rows=24" in bad["error"]  # recorded, not fatal
    assert measured and all("error" not in v for v in measured), measured
    for row in measured:
        assert row["pixel_steps_per_s"] > 0 and row["vs_torch"]["ok"], row
        assert row["identity"].startswith("triton ")
    assert report["complete"] and "triton" in report["machine"]["versions"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_default_variant_is_invariant_to_launch_and_grouping_on_cuda(dtype):
    """The compiled default variant on a real GPU (skipped without one)."""
    if triton_gpu.triton_source is None or not torch.cuda.is_available():
        pytest.skip("no CUDA device (or no triton)")
    steps, P = 30, 301
    problem = make_problem(width=16, N=40, minibatch=None, steps=steps)
    rng = np.random.default_rng(5)
    lrs, _ = per_layer_learning_rates(
        10 ** rng.uniform(-2, 1.5, P), 10 ** rng.uniform(-1, 2, P), "lr_vs_lr", 2
    )
    kw = dict(nonlinearity="tanh", steps=steps, offset_mode="every_step", dtype=dtype, device="cuda")
    whole = triton_gpu.train(Run(problem, lrs, None, **kw))
    tries = [(0, triton_gpu.train(Run(problem, lrs, None, block_pixels=b, **kw))) for b in (7, 64, 1)]
    tries += [
        (lo, triton_gpu.train(Run(problem, lrs[lo:hi], None, **kw)))
        for lo, hi in ((3, 50), (300, 301), (5, 6))
    ]
    for lo, part in tries:
        for name in STAT_FIELDS:
            want = whole[name][lo : lo + len(part[name])]
            assert np.array_equal(part[name], want, equal_nan=True), (lo, name)
