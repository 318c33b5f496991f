"""Every value that reaches a kernel is the same on every CPU: 10**x correctly rounded.

numpy's ``10.0 ** x`` is its AVX-512 code on CPUs that have it and libm's ``pow``
elsewhere; the two differ in the last bit for about 5% of grid coordinates, and neither is
always correctly rounded. ``tests/data/pow10_vectors.tsv`` (from ``../shared/anchors``)
lists 232 grid coordinates where one of them is wrong, with the correctly rounded value
(mpmath at 200 bits, identical to MPFR's exp10): the old code fails it on any CPU.
"""

from __future__ import annotations

from pathlib import Path

import mpmath
import numpy as np
import pytest

from dispatch_helpers import baseline_and_default, dispatch_targets_found
from trainability import training
from trainability.boundary import box_counting, uncertainty
from trainability.contract import grid, numerics, phase_space

VECTORS = Path(__file__).resolve().parents[2] / "data" / "pow10_vectors.tsv"


def vectors() -> tuple[np.ndarray, np.ndarray]:
    rows = [line.split("\t") for line in VECTORS.read_text().splitlines() if line[:1] not in ("#", "x")]
    return (
        np.array([float.fromhex(r[0]) for r in rows]),
        np.array([float.fromhex(r[1]) for r in rows]),
    )


def test_pow10_is_correctly_rounded_where_numpy_or_libm_is_not():
    x, correct = vectors()
    assert len(x) == 232
    assert numerics.pow10(x).tobytes() == correct.tobytes()
    assert numerics.pow10(x.reshape(8, 29)).tobytes() == correct.tobytes(), "any shape"


def test_axis_values_are_correctly_rounded():
    # Each vector is a linspace coordinate of a window the project uses; the axes of a
    # frame over the whole [-3, 6] window hold several of them.
    x, correct = vectors()
    values = grid.axis_values(-3.0, 6.0, 4096)
    coordinates = grid.axis_log10(-3.0, 6.0, 4096)
    present = np.isin(x, coordinates)
    assert present.sum() >= 5
    for xi, ci in zip(x[present], correct[present]):
        assert values[np.flatnonzero(coordinates == xi)[0]] == ci
    # and every value of that axis against mpmath, rounded to nearest
    with mpmath.workprec(200):
        exact = np.array([float(mpmath.power(10, mpmath.mpf(c))) for c in coordinates.tolist()])
    assert values.tobytes() == exact.tobytes()


@pytest.mark.parametrize("x", [0.0, 1.0, -1.0, 308.0, 308.3, 309.0, -307.0, -320.0, -324.0, -400.0])
def test_pow10_at_the_ends_of_the_range(x):
    with mpmath.workprec(200):
        exact = mpmath.power(10, mpmath.mpf(x))
        # float() of an mpf rounds to nearest, subnormals included (numpy's rule too)
        expected = float(exact) if exact < mpmath.mpf(2) ** 1024 else np.inf
    got = numerics.pow10(np.array([x]))[0]
    assert got == expected or (np.isinf(got) and np.isinf(expected))


def test_logarithms_and_special_values():
    assert numerics.log10(np.array([1000.0, 1.0, 0.0]))[[0, 1]].tolist() == [3.0, 0.0]
    assert numerics.log(np.array([0.0]))[0] == -np.inf and np.isnan(numerics.log(np.array([-1.0]))[0])
    assert numerics.log2(np.array([2.0**-1074, 2.0**1023])).tolist() == [-1074.0, 1023.0]
    assert np.isnan(numerics.pow10(np.array([np.nan]))[0]) and numerics.pow10(np.array([-np.inf]))[0] == 0
    rng = np.random.default_rng(1)
    for function, reference in ((numerics.log10, mpmath.log10), (numerics.log, mpmath.log)):
        x = np.exp(rng.uniform(-50, 50, 300))
        with mpmath.workprec(200):
            exact = np.array([float(reference(mpmath.mpf(v))) for v in x.tolist()])
        assert function(x).tobytes() == exact.tobytes()


def test_box_sizes_are_porespys_with_exact_powers():
    # log10(1000) = 3 exactly, 10**(1 + k (3 - 1) / 9) truncated: where numpy's rounding
    # could land a hair below an integer, the correctly rounded value does not.
    assert box_counting.box_sizes((1000, 1000)).tolist() == [10, 16, 27, 46, 77, 129, 215, 359, 599, 1000]
    assert box_counting.box_sizes((100, 100)).tolist() == [10, 12, 16, 21, 27, 35, 46, 59, 77, 100]


# What reaches the kernels, computed in a child process: axes of the default run's windows,
# the learning rates and optimiser values of the phase spaces, the uncertainty exponent's
# points and partners, Liu's line, box sizes, shared and per-pixel random draws.
INPUTS = """
import hashlib
import numpy as np
from trainability import training
from trainability.contract import numerics
from trainability.boundary import box_counting
from trainability.contract import grid
from trainability.contract import phase_space
from trainability.boundary import uncertainty
parts = []
for lo, hi in [(-3.0, 6.0), (2.2787766419496367, 2.278780664655938), (-0.5728404884323148,
               -0.5728404884272571), (-0.7076069519633258, -0.7076069513342405)]:
    x, y = grid.pixel_coordinates(((lo, hi), (lo + 0.5, hi + 0.5)), 96, 0, 96 * 96)
    parts += [x, y]
    for kind in phase_space.KINDS[:6]:
        settings = {"optimizer": "adam" if "beta" in kind or kind == "lr_vs_eps" else "gd"}
        if kind == "lr_vs_beta":
            settings["optimizer"] = "momentum"
        if kind in ("lr_vs_lr", "paraminit_vs_lr"):
            lrs, offsets = phase_space.mlp_learning_rates(kind, x, y, 2)
            parts += [lrs] + ([] if offsets is None else [offsets])
        else:
            parts.append(phase_space.optimizer_settings(kind, settings, y)[1]["beta1" if "1" in kind
                         else "beta2" if "2" in kind else "eps" if "eps" in kind else "beta"])
window = ((-3.0, 6.0), (-3.0, 6.0))
eps = uncertainty.epsilons(window, "float64", per_decade=2, largest=0.1)
points = uncertainty.sample(window, 2000, eps, 7).all_points()
parts += [eps, numerics.pow10(points[:, 0]), numerics.pow10(points[:, 1])]
parts.append(numerics.pow10(training.line_points({"x": [0.1, 1.3], "points_log2": 12})))
parts += [box_counting.box_sizes((r, r)).astype(float) for r in (16, 64, 96, 100, 1000, 4096)]
# Per-pixel draws (numpy's generators: integer arithmetic, and the ziggurat's libm calls)
from trainability.contract import problem
from trainability.contract import randomness
model, data = {"width": 8, "depth": 2, "nonlinearity": "tanh"}, {"size": 16, "seed": 0, "target_dim": 1}
settings = {"steps": 20, "batch": 4, "dtype": "float64"}
shared = problem.build_problem(model, data, settings, ".")
drawn = randomness.pixel_problem(shared, model, {**data, "per_pixel": ["weights", "data", "minibatch"]},
                                 settings, np.arange(3000))
parts += [*drawn.weights, drawn.X, drawn.Y, drawn.minibatch_indices, *shared.weights, shared.X]
digest = hashlib.sha256(b"".join(np.ascontiguousarray(p, dtype=np.float64).tobytes() for p in parts))
power = hashlib.sha256((10.0 ** parts[0]).tobytes())
print(json.dumps({"inputs": digest.hexdigest(), "power": power.hexdigest()}))
"""


def test_kernel_inputs_are_the_same_bits_whatever_numpys_cpu_dispatch():
    baseline, default = baseline_and_default(INPUTS)
    assert baseline["inputs"] == default["inputs"]
    if {"X86_V4", "AVX512_SKX", "AVX512F"} & set(dispatch_targets_found()):
        # The probe can see the defect it guards against: numpy's own power differs here.
        assert baseline["power"] != default["power"]


def test_the_training_path_uses_the_correctly_rounded_powers():
    # The centre search's pilots and bisection points go through converged_function, the
    # frames through pixel_coordinates, the estimators through numerics: no 10.0 ** left.
    x, correct = vectors()
    values = grid.pixel_coordinates(((x.min(), x.max()), (0.0, 1.0)), 4, 0, 4)[0]
    assert values.tobytes() == numerics.pow10(grid.axis_log10(x.min(), x.max(), 4)).tobytes()
    for module in (grid, training, uncertainty, phase_space):
        source = Path(module.__file__).read_text()
        assert "10.0 **" not in source and "10 **" not in source and "np.power" not in source, module


# ------------------------------------------------- double-double coordinates and powers


def test_precise_coordinates_keep_every_digit_and_powers_round_to_double_double():
    ends = ("1.6839372398742845123456789012345", "1.6839372398742845123456789012399")
    xs = numerics.linspace_precise(*ends, 7)
    assert numerics.decimal(xs[0], 32) == ends[0] and numerics.decimal(xs[-1], 32) == ends[1]
    hi, lo = numerics.pow10_double_double(xs)
    with mpmath.workprec(300):
        for x, h, low in zip(xs, hi.tolist(), lo.tolist()):
            exact = mpmath.power(10, mpmath.mpf(numerics.decimal(x, 60)))
            assert h == float(exact)  # the nearest double
            assert low == float(exact - mpmath.mpf(h))  # the nearest double to the rest
            assert abs(mpmath.mpf(h) + low - exact) < exact * mpmath.mpf(2) ** -105
    # float64 cannot tell these seven coordinates (or their powers) apart; double-double can
    assert len({float(x) for x in xs}) == 1 and len(set(hi.tolist())) == 1
    assert len(set(zip(hi.tolist(), lo.tolist()))) == 7


def test_a_double_double_pair_reads_back_as_its_sum():
    hi, lo = numerics.to_double_double([numerics.precise((1.0, 2.0**-80))])
    assert hi.tolist() == [1.0] and lo.tolist() == [2.0**-80]
