"""The double-double C kernel (``training.dtype: float64x2``, ``kernels.c_cpu_dd``): its
trajectories against an mpmath reference at 60 digits (``tests/mp_reference.py``, written
from the network's definition), its tanh against mpmath's, its bits (independent of chunks,
threads and ISA, and recorded per ``c_cpu_dd.BUILD_CLASS``), its labels against the float64
kernel's where float64 resolves the frame, and what it is for: frames past float64's
resolution, where float64's learning rates repeat and its frame shows blocks.

Bounds: double-double's unit roundoff is 2^-106 ~ 1.2e-32; the kernel's losses were measured
within 4e-32 to 9e-31 relative of the reference over these trajectories, 3.5e-30 on the
diverging pixel (its growth amplifies every rounding), so 1e-29 leaves a margin and still
fails by twelve orders for any float64 operation on the way (a learning rate's lo part
dropped, a constant rounded to float64: 1e-17 relative and more). Where the loss falls
below 1e-2 of its start, f - Y cancels and the loss's relative error grows as it shrinks
(the author's N1 problem fits its one datum to a loss of 1e-76): there f - Y's own error,
|sqrt(loss) - sqrt(reference)| / sqrt(max(reference, initial loss)), is held to 1e-29
(measured at most 2e-31, 1.8e-30 diverging).
"""

import hashlib
import json
import subprocess
import sys

import gmpy2
import mpmath as mp
import numpy as np
import pytest
import torch

import mp_reference
from kernel_helpers import ARM, V3_FLAGS, X86, build_variants, cpu_flags, make_problem
from trainability.boundary.scoring import convergence_measure
from trainability.contract import numerics
from trainability.contract.problem import per_layer_learning_rates
from trainability.contract.statistics import STAT_FIELDS
from trainability.kernels import c_cpu, c_cpu_dd, c_library, torch_batched
from trainability.kernels.backend import Run
from trainability.ops import selftest
from workflow_helpers import REPO

pytestmark = pytest.mark.skipif(c_library.find_compiler() is None, reason="no C compiler (gcc/cc/$CC)")

AUTHOR = selftest.INIT_FILE.parent
RELATIVE = 1e-29  # loss relative to the reference, while the loss is not cancelled (see above)
RESIDUAL = 1e-29  # |sqrt(loss) - sqrt(reference)| / sqrt(max(reference, initial loss)): f - Y's error


def author_problem(n: int):
    return selftest.load_problem(AUTHOR / f"author_init_N{n}.npz")


def dd_rates(*log10s: str) -> tuple[tuple[float, float], ...]:
    """10**x of decimal strings as (hi, lo) pairs (lo nonzero: the kernel must use it)."""
    hi, lo = numerics.pow10_double_double([numerics.precise(x) for x in log10s])
    return tuple(zip(hi.tolist(), lo.tolist()))


def kernel_losses(problem, lr, nonlinearity, steps, *, offset=None, optimizer="gd", hyper=None, **kw):
    """The kernel's losses of one pixel as mpf (hi + lo, exact at 60 digits) and its statistics."""
    pair = [v if isinstance(v, tuple) else (float(v), 0.0) for v in lr]
    run = Run(
        problem,
        np.array([[p[0] for p in pair]]),
        None if offset is None else np.array([offset]),
        learning_rates_lo=np.array([[p[1] for p in pair]]),
        nonlinearity=nonlinearity,
        steps=steps,
        dtype="float64x2",
        optimizer=optimizer,
        optimizer_params={k: np.array([v]) for k, v in (hyper or {}).items()},
        **kw,
    )
    losses, stats = c_cpu_dd.losses(run)
    with mp.workdps(60):
        return [mp.mpf(float(h)) + mp.mpf(float(lo)) for h, lo in losses[0]], stats


def assert_matches_reference(problem, lr, nonlinearity, steps, *, min_steps=None, **kw):
    """The kernel's losses against the 60-digit reference, step by step until divergence:
    relative while the loss is above 1e-2 of its start (below, f - Y cancels and the loss's
    relative error grows as the loss shrinks), and f - Y's error (RESIDUAL) at every step."""
    ref = mp_reference.losses(
        problem.weights,
        problem.X,
        problem.Y,
        lr,
        nonlinearity,
        steps,
        offset=kw.get("offset"),
        offset_mode=kw.get("offset_mode", "every_step"),
        optimizer=kw.get("optimizer", "gd"),
        hyper=kw.get("hyper"),
    )
    got, stats = kernel_losses(problem, lr, nonlinearity, steps, **kw)
    diverged = int(stats["diverged_step"][0])
    end = len(ref) if diverged < 0 else min(len(ref), diverged + 1)
    assert end >= (min_steps or steps), f"the reference stopped at {len(ref)}, divergence at {diverged}"
    with mp.workdps(60):
        rel = [abs(g - r) / r for g, r in zip(got[:end], ref[:end]) if r > ref[0] * mp.mpf("1e-2")]
        res = [abs(mp.sqrt(g) - mp.sqrt(r)) / mp.sqrt(max(r, ref[0])) for g, r in zip(got[:end], ref[:end])]
    assert rel and max(rel) <= RELATIVE, f"relative error {mp.nstr(max(rel), 3)} over {len(rel)} steps"
    assert max(res) <= RESIDUAL, f"residual error {mp.nstr(max(res), 3)}"
    return ref, stats


@pytest.mark.parametrize(
    "nonlinearity, lr",
    [
        ("tanh", (0.3, 0.2)),
        ("relu", (0.1, 0.3)),
        ("identity", (0.2, 0.1)),
        ("tanh", dd_rates("-0.5", "-0.7")),
    ],
)
def test_small_problem_trajectories_match_the_60_digit_reference(nonlinearity, lr):
    """make_problem(width 6, N 9), 200 full-batch gd steps that converge to a nonzero loss."""
    assert_matches_reference(make_problem(width=6, N=9), lr, nonlinearity, 200)


def test_offset_every_step_and_init_only_match_the_reference():
    problem = make_problem(width=5, N=7, d_out=2, seed=4)
    for mode in ("every_step", "init_only"):
        assert_matches_reference(
            problem, dd_rates("-0.6", "-0.4"), "tanh", 120, offset=0.002, offset_mode=mode
        )


@pytest.mark.parametrize(
    "nonlinearity, lr", [("tanh", (1.0, 30.0)), ("relu", (1.0, 30.0)), ("identity", dd_rates("-0.5", "0.5"))]
)
def test_author_n1_trajectories_match_the_reference(nonlinearity, lr):
    """The author's problem with one datum (width 16): the loss falls to ~1e-76, so past its
    first decades only f - Y's absolute error (RESIDUAL) is compared."""
    ref, stats = assert_matches_reference(author_problem(1), lr, nonlinearity, 300)
    assert stats["diverged_step"][0] < 0 and ref[-1] < ref[0] * mp.mpf("1e-20")


def test_author_n1_diverging_pixel_matches_the_reference_until_divergence():
    ref, stats = assert_matches_reference(author_problem(1), (3.0, 100.0), "tanh", 300, min_steps=5)
    assert 0 <= stats["diverged_step"][0] < 20


def test_author_n16_tanh_matches_the_reference():
    """The author's 16-datum problem, 100 steps (the reference's slowest case, ~1 s)."""
    assert_matches_reference(author_problem(16), (1.0, 30.0), "tanh", 100)


def test_momentum_and_adam_match_the_reference():
    """The update rules of contract.optimizers' docstring, written out in mp_reference."""
    problem = make_problem(width=6, N=9, seed=1)
    assert_matches_reference(problem, (0.05, 0.1), "tanh", 150, optimizer="momentum", hyper={"beta": 0.9})
    hyper = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert_matches_reference(problem, dd_rates("-2", "-1.5"), "tanh", 150, optimizer="adam", hyper=hyper)


# ---- tanh ----


def test_tanh_dd_is_accurate_across_magnitudes():
    """Against mpmath.tanh at 60 digits: tiny (the x shortcut below 2^-60), near 1, the
    reduction's k ranges, large (saturated; clamped past 40) and negative, lo parts nonzero."""
    rng = np.random.default_rng(0)
    mags = np.concatenate(
        [
            10 ** rng.uniform(-300, -19, 40),
            10 ** rng.uniform(-19, -1, 200),
            rng.uniform(0.1, 2.0, 300),
            rng.uniform(2.0, 20.0, 200),
            rng.uniform(20.0, 45.0, 50),
            [2.0**-60, 2.0**-59, 0.34657359027997264, 0.5, 1.0, 18.0, 40.0, 41.0, 700.0],
        ]
    )
    hi = mags * rng.choice([-1.0, 1.0], mags.size)
    lo = hi * 2.0**-53 * rng.uniform(-0.5, 0.5, hi.size)
    lo = (hi + lo) - hi  # a proper double-double: |lo| <= ulp(hi) / 2
    yh, yl = c_cpu_dd.tanh_dd(hi, lo)
    worst = 0.0
    with mp.workdps(60):
        for xh, xl, h, lw in zip(hi.tolist(), lo.tolist(), yh.tolist(), yl.tolist()):
            ref = mp.tanh(mp.mpf(xh) + mp.mpf(xl))
            err = abs(mp.mpf(h) + mp.mpf(lw) - ref) / abs(ref)
            worst = max(worst, float(err * mp.mpf(2) ** 104))
            assert abs(lw) <= abs(h) * 2.0**-52, f"tanh({xh!r}) not normalised: {h!r} + {lw!r}"
    assert worst <= 4.0, f"tanh_dd: {worst:.2f} units of 2^-104"
    # signs, zeros and specials
    specials = np.array([0.0, -0.0, np.inf, -np.inf])
    sh, _ = c_cpu_dd.tanh_dd(specials, np.zeros(4))
    assert list(sh) == [0.0, 0.0, 1.0, -1.0] and np.signbit(sh[1]) and not np.signbit(sh[0])
    assert np.isnan(c_cpu_dd.tanh_dd(np.array([np.nan]), np.zeros(1))[0][0])


# ---- bits ----


def variants() -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {"native": ("native", ())}
    if X86:
        out["x86-64-v2"] = ("x86-64-v2", ())  # no FMA instruction: libm's fma, 2-lane SSE
        if V3_FLAGS <= cpu_flags():
            out["x86-64-v3"] = ("x86-64-v3", ())
    elif ARM:
        out["armv8-a"] = ("armv8-a", ())
    return out


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("dd-variants")
    return build_variants(c_cpu_dd.build_variant, variants(), out_dir, 2, "the double-double kernel")


def differing_pixels(a: dict, b: dict) -> np.ndarray:
    def bits(x):
        x = np.asarray(x)
        return x.view(np.uint64) if x.dtype.kind == "f" else x

    return np.any([bits(a[k]) != bits(b[k]) for k in STAT_FIELDS], axis=0)


def stats_digest(stats: dict) -> str:
    h = hashlib.sha256()
    for name in STAT_FIELDS:
        h.update(np.ascontiguousarray(stats[name]).tobytes())
    return h.hexdigest()[:16]


def bits_case(nonlinearity: str):
    """A 6x6 window straddling the boundary (width 7, odd: every tile path; 20 rows, padded to
    24), rates with lo parts, 200 steps; tanh with an offset every step."""
    problem = make_problem(width=7, N=20, seed=0)
    x = numerics.linspace_precise("-0.3", "0.9", 6)
    y = numerics.linspace_precise("0.2", "1.6", 6)
    (xh, xl), (yh, yl) = numerics.pow10_double_double(x), numerics.pow10_double_double(y)
    gx, gy = np.meshgrid(np.arange(6), np.arange(6))
    lrs, _ = per_layer_learning_rates(xh[gx.ravel()], yh[gy.ravel()], "lr_vs_lr", 2)
    lo, _ = per_layer_learning_rates(xl[gx.ravel()], yl[gy.ravel()], "lr_vs_lr", 2)
    offsets = np.full(36, 0.001) if nonlinearity == "tanh" else None
    kw = dict(nonlinearity=nonlinearity, steps=200, dtype="float64x2", learning_rates_lo=lo)
    return problem, lrs, offsets, kw


# sha256 (16 hex digits) of the statistics' bits (STAT_FIELDS order) of bits_case(nonlinearity),
# as the kernel of c_cpu_dd.BUILD_CLASS computes them (recorded with the native AVX-512 build;
# the x86-64-v2 and v3 builds gave the same bits).
GOLDEN = {
    "double-double-fixed-order-1": {
        "tanh": "3dfd30615583977d",
        "relu": "1d7114254a53f4c6",
        "identity": "fb195d142fd29cef",
    }
}


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_bits_are_the_same_in_every_build_and_those_recorded(libs, nonlinearity):
    problem, lrs, offsets, kw = bits_case(nonlinearity)
    runs = {
        name: c_cpu_dd.train(Run(problem, lrs, offsets, threads=2, **kw), lib=lib)
        for name, lib in libs.items()
    }
    labels = convergence_measure(runs["native"]) < 0
    assert labels.any() and not labels.all(), "the window must hold converging and diverging pixels"
    for name, stats in runs.items():
        differ = differing_pixels(stats, runs["native"])
        assert not differ.any(), f"{name}: {differ.sum()} of {differ.size} pixels differ from native"
    golden = GOLDEN.get(c_cpu_dd.BUILD_CLASS)
    assert golden is not None, f"no digests recorded for BUILD_CLASS {c_cpu_dd.BUILD_CLASS!r}"
    digest = stats_digest(runs["native"])
    assert digest == golden[nonlinearity], f"{nonlinearity}: digest {digest}, recorded {golden[nonlinearity]}"


def test_bits_do_not_depend_on_chunks_threads_or_neighbours(libs):
    problem, lrs, offsets, kw = bits_case("tanh")
    for name, lib in libs.items():
        alone = c_cpu_dd.train(Run(problem, lrs, offsets, threads=1, **kw), chunk=1, lib=lib)
        for threads, chunk in ((1, 36), (2, 7), (2, None)):
            stats = c_cpu_dd.train(Run(problem, lrs, offsets, threads=threads, **kw), chunk=chunk, lib=lib)
            differ = differing_pixels(stats, alone)
            assert not differ.any(), f"{name}, {threads} threads, chunk {chunk}: {differ.sum()} pixels differ"
        sub = [35, 3, 17]
        sub_kw = {**kw, "learning_rates_lo": kw["learning_rates_lo"][sub]}
        stats = c_cpu_dd.train(Run(problem, lrs[sub], offsets[sub], **sub_kw), lib=lib)
        assert not differing_pixels(stats, {k: np.asarray(alone[k])[sub] for k in STAT_FIELDS}).any(), name
    # the dispatcher's path (c_cpu.train hands float64x2 to c_cpu_dd) gives the same bits
    via = c_cpu.train(Run(problem, lrs, offsets, threads=2, **kw))
    assert not differing_pixels(via, alone).any()


# ---- against float64, and past it ----

N1_BOUNDARY = (0.5, 1.5836247460927098)  # log10 (lr W0, lr W1) on the author's tanh N1 boundary


def test_labels_agree_with_float64_where_float64_resolves_the_frame():
    """A 24x24 window 1e-3 decades wide (11 decades above float64's resolution) around a
    boundary point of the author's tanh N1 problem, 300 steps: the same labels."""
    problem = author_problem(1)
    (x0, y0), w = N1_BOUNDARY, 1e-3
    gx, gy = np.meshgrid(np.linspace(x0 - w / 2, x0 + w / 2, 24), np.linspace(y0 - w / 2, y0 + w / 2, 24))
    lrs, _ = per_layer_learning_rates(numerics.pow10(gx.ravel()), numerics.pow10(gy.ravel()), "lr_vs_lr", 2)
    kw = dict(nonlinearity="tanh", steps=300, threads=2)
    f64 = convergence_measure(c_cpu.train(Run(problem, lrs, None, dtype="float64", **kw))) < 0
    dd = convergence_measure(c_cpu.train(Run(problem, lrs, None, dtype="float64x2", **kw))) < 0
    assert 0.2 < f64.mean() < 0.8, "the window must straddle the boundary"
    assert (f64 == dd).mean() >= 0.99, f"labels agree on {(f64 == dd).mean():.3%} of pixels"


@pytest.mark.parametrize("span", ["1e-15", "1e-17"])
def test_past_float64s_resolution_dd_pixels_are_distinct_where_float64_repeats(span):
    """64 pixels along log10(lr of W1) spanning ``span`` relative around the N1 boundary's y
    (lr of W0 fixed): float64's coordinates round to fewer values, its pixels repeat in blocks
    of identical statistics; double-double's rates are all distinct, and so are its pixels."""
    problem = author_problem(1)
    ctx = gmpy2.context(precision=numerics.PRECISE_BITS)
    y0 = numerics.precise(repr(N1_BOUNDARY[1]))
    half = ctx.div(ctx.mul(y0, numerics.precise(span)), 2)
    ends = [format(ctx.sub(y0, half), ".40g"), format(ctx.add(y0, half), ".40g")]
    yh, yl = numerics.pow10_double_double(numerics.linspace_precise(*ends, 64))
    xh, xl = numerics.pow10_double_double([numerics.precise(repr(N1_BOUNDARY[0]))] * 64)
    kw = dict(nonlinearity="tanh", steps=300, threads=2)
    dd = c_cpu.train(
        Run(
            problem,
            np.stack([xh, yh], 1),
            None,
            learning_rates_lo=np.stack([xl, yl], 1),
            dtype="float64x2",
            **kw,
        )
    )
    y64 = numerics.pow10(np.linspace(float(ends[0]), float(ends[1]), 64))
    f64 = c_cpu.train(Run(problem, np.stack([numerics.pow10(np.full(64, N1_BOUNDARY[0])), y64], 1), **kw))
    # float64: repeated rates, and adjacent pixels with identical statistics (blocks)
    assert len(set(y64.tolist())) < 16
    same_as_left = ~differing_pixels(
        {k: np.asarray(v)[1:] for k, v in f64.items()}, {k: np.asarray(v)[:-1] for k, v in f64.items()}
    )
    assert same_as_left.sum() >= 48
    # double-double: every rate distinct, every pixel's statistics distinct from its neighbour's
    assert len(set(zip(yh.tolist(), yl.tolist()))) == 64
    dd_same = ~differing_pixels(
        {k: np.asarray(v)[1:] for k, v in dd.items()}, {k: np.asarray(v)[:-1] for k, v in dd.items()}
    )
    assert not dd_same.any(), f"{dd_same.sum()} dd pixels repeat their left neighbour"
    assert len(set(dd["sum_u"].tolist())) == 64
    assert len(set(dd["loss_final"].tolist())) > 2 * len(set(f64["loss_final"].tolist()))
    # converged below float64's floor: the dd losses end ~30 decades lower
    assert np.median(dd["loss_final"]) < 1e-50 < np.median(f64["loss_final"])


# ---- the interface ----


def test_run_refuses_lo_parts_without_double_double_and_backends_answer():
    problem = make_problem(width=4, N=5)
    lrs = np.full((3, 2), 0.1)
    with pytest.raises(ValueError, match="learning_rates_lo is for dtype float64x2"):
        Run(problem, lrs, nonlinearity="tanh", steps=3, learning_rates_lo=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="offsets_lo is for dtype float64x2"):
        Run(problem, lrs, np.zeros(3), nonlinearity="tanh", steps=3, dtype="float32", offsets_lo=np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        Run(problem, lrs, nonlinearity="tanh", steps=3, dtype="float64x2", learning_rates_lo=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="offsets_lo must have the shape"):
        Run(problem, lrs, None, nonlinearity="tanh", steps=3, dtype="float64x2", offsets_lo=np.zeros(3))
    cpu = torch.device("cpu")
    assert c_cpu.unsupported(problem, "float64x2", cpu) is None
    assert "runs on CPU" in c_cpu.unsupported(problem, "float64x2", torch.device("cuda"))
    assert "depth-2" in c_cpu.unsupported(make_problem(depth=3, width=4, N=5), "float64x2", cpu)
    assert "double-double" in torch_batched.unsupported(problem, "float64x2", cpu)
    assert torch_batched.unsupported(problem, "float64", cpu) is None


def test_benchmark_command_writes_both_dtypes(tmp_path):
    """benchmarks.double_double, tiny: every case timed in both dtypes, the factor their ratio."""

    out = tmp_path / "dd.json"
    cmd = [sys.executable, "-m", "benchmarks.double_double", "--resolution", "2", "--steps", "5"]
    proc = subprocess.run(
        [*cmd, "--repeats", "1", "--output", str(out)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["cases"]) == {"tanh-N16", "identity-N16", "tanh-N1"}
    for row in report["cases"].values():
        assert row["float64"]["pixel_steps_per_s"] > 0 and row["float64x2"]["pixel_steps_per_s"] > 0
        assert row["time_factor_dd_over_float64"] == row["float64x2"]["seconds"] / row["float64"]["seconds"]
    assert report["problem"]["pixels"] == 4 and report["problem"]["steps"] == 5
    assert {"cpu", "versions", "loadavg_before"} <= set(report["machine"])
