"""The fused C kernel's bits do not depend on the ISA or the optimisation it is built with
(kernels.c_cpu.BUILD_CLASS): the kernel built for several ISAs gives the same statistics,
bit for bit.

The builds differ in code generation: -march=native (AVX2+FMA or AVX-512), native with
128-bit vectors (2 lanes, FMA), x86-64-v3 (AVX2+FMA, 4 lanes), x86-64-v2 (SSE, no FMA
instruction: libm's fma, scalar) and -O1 without vectorisation (scalar), plus x86-64-v4
where the CPU has AVX-512; on aarch64 native, armv8-a and -O1. Before the order of sums
was fixed in the source, these builds disagreed on most pixels of every window here, and
on labels in the chaotic one. Windows straddle the boundary and are checked to hold both
labels, so that agreement cannot be vacuous.
"""

import hashlib

import numpy as np
import pytest

from kernel_helpers import ARM, V3_FLAGS, V4_FLAGS, X86, build_variants, cpu_flags, make_problem
from trainability.boundary.scoring import convergence_measure
from trainability.contract import numerics
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
from trainability.kernels import c_cpu, c_library
from trainability.kernels.backend import Run

pytestmark = pytest.mark.skipif(c_library.find_compiler() is None, reason="no C compiler (gcc/cc/$CC)")


def variants() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (march, extra flags): builds this CPU can run (x86-64-v4 would crash without AVX-512)."""
    out = {"native": ("native", ()), "O1-scalar": ("native", ("-O1", "-fno-tree-vectorize"))}
    if X86:
        flags = cpu_flags()
        out["x86-64-v2"] = ("x86-64-v2", ())
        out["native-128-bit"] = ("native", ("-mprefer-vector-width=128",))
        if V3_FLAGS <= flags:
            out["x86-64-v3"] = ("x86-64-v3", ())
        if V4_FLAGS <= flags:
            out["x86-64-v4"] = ("x86-64-v4", ())
    elif ARM:
        out["armv8-a"] = ("armv8-a", ())  # NEON, 2 lanes
    return out


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """The builds, once per module; one an older compiler does not know is left out."""
    out_dir = tmp_path_factory.mktemp("fused-variants")
    return build_variants(c_cpu.build_variant, variants(), out_dir, 3, "the C kernel")


def grid(x, y, resolution):
    # Correctly rounded powers: numpy's logspace gives other inputs on other CPUs.
    gx, gy = np.meshgrid(numerics.logspace(*x, resolution), numerics.logspace(*y, resolution))
    return gx.ravel(), gy.ravel()


def differing_bits(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where two arrays differ in their bits (float64 as uint64; any NaN equals any NaN:
    which operand's NaN an instruction propagates is no arithmetic difference)."""
    if x.dtype.kind != "f":
        return x != y
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    return (nan_x != nan_y) | (~nan_x & ~nan_y & (x.view(np.uint64) != y.view(np.uint64)))


def differing_pixels(a: dict, b: dict) -> np.ndarray:
    """Pixels where any statistic differs in its bits."""
    return np.any([differing_bits(np.asarray(a[k]), np.asarray(b[k])) for k in STAT_FIELDS], axis=0)


def assert_same_bits(libs, problem, lrs, offsets, **kw):
    run = Run(problem, lrs, offsets, threads=2, **kw)
    runs = {name: c_cpu.train(run, lib=lib) for name, lib in libs.items()}
    labels = convergence_measure(runs["native"]) < 0
    assert labels.any() and not labels.all(), "the window must hold converging and diverging pixels"
    report = []
    for name, run in runs.items():
        differ = differing_pixels(run, runs["native"])
        flipped = (convergence_measure(run) < 0) != labels
        if differ.any():
            report.append(f"{name}: {differ.sum()} of {differ.size} pixels differ, {flipped.sum()} labels")
    assert not report, "builds disagree with -march=native: " + "; ".join(report)


def test_paraminit_window_is_bitwise_identical_across_builds(libs):
    """The chaotic parameter-initialisation case: W0 offset (every step) vs learning rate,
    straddling the boundary; width 7 (odd: every tile path of gW0), 20 rows (padded to 32)."""
    problem = make_problem(width=7, N=20, seed=0)
    lrs, offsets = per_layer_learning_rates(*grid((-1.0, 0.2), (0.9, 1.4), 16), "paraminit_vs_lr", 2)
    assert_same_bits(libs, problem, lrs, offsets, nonlinearity="tanh", steps=400, offset_mode="every_step")


def test_paraminit_init_only_minibatch_is_bitwise_identical_across_builds(libs):
    problem = make_problem(width=6, N=20, minibatch=5, seed=1, steps=300)
    lrs, offsets = per_layer_learning_rates(*grid((-1.5, 0.5), (0.0, 1.5), 12), "paraminit_vs_lr", 2)
    assert_same_bits(libs, problem, lrs, offsets, nonlinearity="tanh", steps=300, offset_mode="init_only")


@pytest.mark.parametrize("nonlinearity", ["relu", "identity"])
def test_relu_and_identity_are_bitwise_identical_across_builds(libs, nonlinearity):
    problem = make_problem(width=7, N=20, d_out=2, seed=2)
    lrs, _ = per_layer_learning_rates(*grid((-1.0, 1.5), (-1.0, 2.0), 12), "lr_vs_lr", 2)
    assert_same_bits(libs, problem, lrs, None, nonlinearity=nonlinearity, steps=300, offset_mode="every_step")


def test_full_batch_tanh_lr_window_is_bitwise_identical_across_builds(libs):
    problem = make_problem(width=8, N=20, seed=3)
    lrs, _ = per_layer_learning_rates(*grid((-0.5, 1.5), (0.5, 2.5), 16), "lr_vs_lr", 2)
    assert_same_bits(libs, problem, lrs, None, nonlinearity="tanh", steps=400, offset_mode="every_step")


def fused_tanh(lib, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.empty_like(x)
    lib.fused_tanh_f64(x.size, x.ctypes.data, y.ctypes.data)
    return y


def tanh_arguments() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = 200_000
    return np.concatenate(
        [
            rng.uniform(-1.0, 1.0, n),
            rng.uniform(0.15, 0.6, n),  # k = -1: the hardest range
            rng.uniform(-25.0, 25.0, n),
            10 ** rng.uniform(-310, 1.5, n) * rng.choice([-1.0, 1.0], n),
            [0.0, -0.0, 20.0, -20.0, 40.0, 1e300, np.inf, -np.inf, np.nan, 5e-324],
        ]
    )


def test_tanh_is_bitwise_identical_across_builds_and_accurate(libs):
    x = tanh_arguments()
    ys = {name: fused_tanh(lib, x) for name, lib in libs.items()}
    for name, y in ys.items():
        differ = differing_bits(y, ys["native"])
        assert not differ.any(), f"{name}: {differ.sum()} of {differ.size} values differ from native"
    y = ys["native"]
    assert np.isnan(y[-2]) and list(y[-10:-2].view(np.uint64)) == list(
        np.array([0.0, -0.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0]).view(np.uint64)
    )
    if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
        pytest.skip("long double is double here: no reference for the accuracy")
    finite = np.isfinite(x)
    ref = np.tanh(x[finite].astype(np.longdouble))
    ulp = np.spacing(np.abs(ref).astype(np.float64)).astype(np.longdouble)
    err = np.abs((y[finite].astype(np.longdouble) - ref) / ulp).astype(np.float64)
    assert err.max() <= 2.1, f"{err.max():.3f} ulp at x = {x[finite][err.argmax()]!r}"


def chaotic_window():
    """The parameter-initialisation window of the first test at 150 pixels (no power of 2):
    after 300 steps any change of a rounding anywhere flips most pixels' bits."""
    problem = make_problem(width=7, N=20, seed=0)
    lrs, offsets = per_layer_learning_rates(*grid((-1.0, 0.2), (0.9, 1.4), 15), "paraminit_vs_lr", 2)
    return problem, lrs[:150], offsets[:150]


def test_a_pixel_does_not_depend_on_the_pixels_beside_it(libs):
    """Each pixel alone (chunk=1), all 150 in one call, in calls of 7 on 3 threads and a
    few pixels by themselves give the same bits, in every build: nothing of one pixel's
    arithmetic depends on which pixels share its call, how many they are or the threads."""
    problem, lrs, offsets = chaotic_window()
    kw = dict(nonlinearity="tanh", steps=300, offset_mode="every_step")
    for name, lib in libs.items():
        alone = c_cpu.train(Run(problem, lrs, offsets, threads=1, **kw), chunk=1, lib=lib)
        for threads, chunk in ((1, 150), (3, 7), (2, None)):
            run = c_cpu.train(Run(problem, lrs, offsets, threads=threads, **kw), chunk=chunk, lib=lib)
            differ = differing_pixels(run, alone)
            assert not differ.any(), f"{name}, {threads} threads, chunk {chunk}: {differ.sum()} pixels differ"
        for sub in ([149], [3, 77, 100], list(range(40, 47))):
            run = c_cpu.train(Run(problem, lrs[sub], offsets[sub], threads=1, **kw), lib=lib)
            differ = differing_pixels(run, {k: np.asarray(alone[k])[sub] for k in STAT_FIELDS})
            assert not differ.any(), f"{name}, pixels {sub} by themselves: {differ.sum()} differ"


def test_tanh_is_the_same_in_any_block_position(libs):
    """The kernel's tanh runs 32 values at a time, then 16, then the rest in a padded block:
    each value's bits must not depend on which of these paths or positions it takes."""
    rng = np.random.default_rng(1)  # the specials and values where every rounding shows: 40 = 32 + 8
    x = np.concatenate([rng.uniform(-3.0, 3.0, 15), tanh_arguments()[-10:], rng.uniform(-3.0, 3.0, 15)])
    for name, lib in libs.items():
        whole = fused_tanh(lib, x)
        for i, v in enumerate(x):
            one = fused_tanh(lib, np.array([v]))
            assert not differing_bits(one, whole[i : i + 1]).any(), (
                f"{name}: tanh({v!r}) depends on its block"
            )
        assert not differing_bits(fused_tanh(lib, x[::-1]), whole[::-1]).any(), name


def stats_digest(stats: dict) -> str:
    h = hashlib.sha256()
    for name in STAT_FIELDS:
        h.update(np.ascontiguousarray(stats[name]).tobytes())
    return h.hexdigest()[:16]


# sha256 (first 16 hex digits) of every statistic's bits, STAT_FIELDS order, of each case
# below, as the kernel of c_cpu.BUILD_CLASS computes them (recorded with the one-pixel-at-
# a-time kernel that introduced "fixed-order-fma-1"; the tiled one is bit for bit the same).
GOLDEN = {
    "fixed-order-fma-1": {
        "paraminit-tanh": "975f2f756c3b705d",
        "lr-relu-d2": "45c1397e75929b01",
        "minibatch-tanh": "ca33a7bbf4f3bdcf",
    }
}


def golden_cases():
    """(name, problem, learning rates, offsets, training keywords) of each recorded case."""
    lrs, _ = per_layer_learning_rates(*grid((-1.0, 1.5), (-1.0, 2.0), 8), "lr_vs_lr", 2)
    tanh = dict(nonlinearity="tanh", steps=200, offset_mode="every_step")
    yield ("paraminit-tanh", *chaotic_window(), {**tanh, "steps": 300})
    yield (
        "lr-relu-d2",
        make_problem(width=5, N=13, d_out=2, seed=2),
        lrs,
        None,
        {**tanh, "nonlinearity": "relu"},
    )
    yield "minibatch-tanh", make_problem(width=9, N=37, minibatch=11, seed=1, steps=200), lrs, None, tanh


def test_bits_are_those_recorded_for_the_build_class(libs):
    """Any change of the kernel's arithmetic changes these digests: then bump
    c_cpu.BUILD_CLASS (results of another arithmetic are another results version) and
    record the new digests here."""
    golden = GOLDEN.get(c_cpu.BUILD_CLASS)
    assert golden is not None, f"no digests recorded for BUILD_CLASS {c_cpu.BUILD_CLASS!r}"
    for case, problem, lrs, offsets, kw in golden_cases():
        digest = stats_digest(c_cpu.train(Run(problem, lrs, offsets, threads=2, **kw), lib=libs["native"]))
        assert digest == golden[case], f"{case}: digest {digest}, recorded {golden[case]}"
