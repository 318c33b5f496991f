"""Elementary functions whose bits no CPU feature, library dispatch or build can change.

numpy computes ``10.0 ** x``, ``exp``, ``log`` and their kin with SIMD code chosen at
run time: its AVX-512 path and libm's ``pow`` disagree in the last bit for about 5% of
grid coordinates, so the same config gave other learning rates (and other grids) on an
AVX-512 CPU than on an AVX2 one. Every value that reaches a kernel, and every number an
analysis reports, is computed here instead:

* ``pow10``, ``log``, ``log2``, ``log10``: correctly rounded (round to nearest, IEEE
  double, subnormals included) by MPFR through gmpy2. MPFR's results are exact to the
  last bit by specification, so they are the same on any machine and any MPFR version.
  A call costs about 2 microseconds per distinct value; axes are separable, so a frame
  needs R values per axis, not R**2.
* ``pow10_double_double``, ``linspace_precise``: coordinates past float64's limit, kept at
  192 bits (``precise``: decimal strings keep all their digits), and their powers rounded to
  double-double (hi + lo, about 32 digits) for the double-double kernel.
* ``sin_cos`` (``sin``, ``cos``): fdlibm's algorithm (Cody-Waite reduction by pi/2, its
  minimax kernels) from basic operations in a fixed order, vectorised. Measured against
  mpmath: at most 0.77 ulp for |x| <= 2**20 pi/2 (fdlibm's bound: < 1 ulp); up to 2**48,
  sin and cos of x moved by under an ulp; deterministic values in [-1, 1] beyond. 2 to 5
  times the time of numpy's np.sin and np.cos together, which give other last bits on
  other CPUs.

Only IEEE-754 basic operations (+, -, *, /, sqrt), which numpy and C round correctly on
every CPU, are used elsewhere on the way to a kernel.
"""

from __future__ import annotations

import gmpy2
import numpy as np

# IEEE binary64: 53-bit precision, its exponent range and subnormals, round to nearest.
_DOUBLE = gmpy2.ieee(64)
# Distinct values converted per batch: bounds the Python floats alive at once (~50 MB).
_BATCH = 1 << 20


def _elementwise(function, x) -> np.ndarray:
    """``function`` (an MPFR function of the IEEE-double context) of every element of ``x``,
    each distinct value computed once."""
    values = np.asarray(x, dtype=np.float64)
    flat = values.reshape(-1)
    if flat.size == 0:
        return np.empty(values.shape)
    distinct, inverse = np.unique(flat, return_inverse=True)
    results = np.empty(distinct.size)
    for start in range(0, distinct.size, _BATCH):
        batch = distinct[start : start + _BATCH].tolist()
        results[start : start + len(batch)] = np.fromiter(map(float, map(function, batch)), np.float64)
    return results[inverse].reshape(values.shape)


def pow10(x) -> np.ndarray:
    """10**x, correctly rounded, elementwise (float64 array of x's shape)."""
    return _elementwise(_DOUBLE.exp10, x)


def log10(x) -> np.ndarray:
    """log10(x), correctly rounded; -inf at 0, NaN below."""
    return _elementwise(_DOUBLE.log10, x)


def log2(x) -> np.ndarray:
    """log2(x), correctly rounded; -inf at 0, NaN below."""
    return _elementwise(_DOUBLE.log2, x)


def log(x) -> np.ndarray:
    """The natural logarithm, correctly rounded; -inf at 0, NaN below."""
    return _elementwise(_DOUBLE.log, x)


def logspace(lo: float, hi: float, n: int) -> np.ndarray:
    """``numpy.logspace(lo, hi, n)`` with its powers correctly rounded."""
    return pow10(np.linspace(lo, hi, n))


# Double-double (an unevaluated sum hi + lo of two float64, about 32 digits): the
# coordinates and hyperparameters of frames past float64's limit. Computed at PRECISE_BITS
# (192: 32-digit coordinates, their powers and the rounding to 106 bits have room), then
# rounded to the nearest double-double: hi the nearest double, lo the nearest double to
# the rest.
PRECISE_BITS = 192
_PRECISE = gmpy2.context(precision=PRECISE_BITS)


# The relative spacing of each training dtype's values: a frame resolves while neighbouring
# pixels' hyperparameters are a few of these apart. Double-double's hi + lo carries 106
# bits; 2**-104 leaves room for the rounding of 10**x and of the kernel's operations.
EPSILON = {"float64": 2.0**-52, "float32": 2.0**-23, "float64x2": 2.0**-104}
# The precision of each dtype's frame coordinates (log10 units): float64, or for double-double
# PRECISE_BITS (its windows are decimal strings, see ``grid``).
COORDINATE_BITS = {"float64": 53, "float32": 53, "float64x2": PRECISE_BITS}
# The largest finite value of each dtype (double-double has float64's exponent range).
MAX_VALUE = {"float64": float(np.finfo(np.float64).max), "float32": float(np.finfo(np.float32).max)}
MAX_VALUE["float64x2"] = MAX_VALUE["float64"]


def is_precise_number(value) -> bool:
    """True for a finite number or a decimal string of one (a coordinate as the config and
    the centre files may give it)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return bool(np.isfinite(value))
    if not isinstance(value, str):
        return False
    try:
        return bool(gmpy2.is_finite(gmpy2.mpfr(value.strip(), PRECISE_BITS))) and value.strip() != ""
    except ValueError:
        return False


def exceeds_float64(value) -> bool:
    """True when a decimal string has more significant digits than float64 keeps (17): in a
    float64 experiment the rest would be lost."""
    if not isinstance(value, str):
        return False
    mantissa = value.strip().lower().split("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.strip("0")) > 17


def precise_arithmetic():
    """A context manager in which gmpy2's operators compute at PRECISE_BITS (they round to the
    context's precision, not their operands')."""
    return gmpy2.context(_PRECISE)


def precise(value) -> gmpy2.mpfr:
    """A coordinate at PRECISE_BITS: from a decimal string or an mpfr (all its digits), a float,
    or a (hi, lo) pair."""
    if isinstance(value, (tuple, list)):
        return _PRECISE.add(
            gmpy2.mpfr(float(value[0]), PRECISE_BITS), gmpy2.mpfr(float(value[1]), PRECISE_BITS)
        )
    if isinstance(value, (str, type(gmpy2.mpfr(0)))):  # all its digits
        return gmpy2.mpfr(value, PRECISE_BITS)
    return gmpy2.mpfr(float(value), PRECISE_BITS)


def decimal(value: gmpy2.mpfr, digits: int = 34) -> str:
    """A precise value as a decimal string of ``digits`` significant digits (32 are exact for
    a double-double; two more round-trip)."""
    return format(precise(value) if not isinstance(value, gmpy2.mpfr) else value, f".{digits}g")


def to_double_double(values) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) float64 arrays of precise values: hi = the nearest double, lo = the nearest
    double to value - hi (so hi + lo is within 2**-106 relative of the value)."""
    hi = np.array([float(_DOUBLE.add(v, 0)) for v in values], dtype=np.float64)
    lo = np.array([float(_DOUBLE.add(_PRECISE.sub(v, h), 0)) for v, h in zip(values, hi.tolist())])
    return hi, lo


def linspace_precise(lo, hi, n: int) -> list:
    """``n`` evenly spaced precise coordinates from lo to hi (both ends included), each
    computed at PRECISE_BITS from the ends (decimal strings keep all their digits)."""
    a, b = precise(lo), precise(hi)
    if n == 1:
        return [a]
    step = _PRECISE.div(_PRECISE.sub(b, a), n - 1)
    return [_PRECISE.add(a, _PRECISE.mul(step, i)) for i in range(n)]


def pow10_double_double(coordinates) -> tuple[np.ndarray, np.ndarray]:
    """10**x of precise coordinates, rounded to double-double: (hi, lo) arrays."""
    return to_double_double([_PRECISE.exp10(x) for x in coordinates])


# sin and cos: fdlibm's argument reduction and kernels (FreeBSD msun e_rem_pio2.c, k_sin.c,
# k_cos.c). The hex floats are fdlibm's constants, bit for bit.
_INV_PIO2 = float.fromhex("0x1.45f306dc9c883p-1")  # 2 / pi
# pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 + _PIO2_3T (to 2**-155): the first three have 33 bits,
# so n * part is exact for integers |n| <= 2**20.
_PIO2_1 = float.fromhex("0x1.921fb54400000p+0")
_PIO2_2 = float.fromhex("0x1.0b4611a600000p-34")
_PIO2_3 = float.fromhex("0x1.3198a2e000000p-69")
_PIO2_3T = float.fromhex("0x1.b839a252049c1p-104")
# Past 2**48, x * (2 / pi) rounds by more than 0.04 and y0 leaves the kernels' |y| <~ pi/4.
_HUGE = 2.0**48
_S1 = float.fromhex("-0x1.5555555555549p-3")
_S2 = float.fromhex("0x1.111111110f8a6p-7")
_S3 = float.fromhex("-0x1.a01a019c161d5p-13")
_S4 = float.fromhex("0x1.71de357b1fe7dp-19")
_S5 = float.fromhex("-0x1.ae5e68a2b9cebp-26")
_S6 = float.fromhex("0x1.5d93a5acfd57cp-33")
_C1 = float.fromhex("0x1.555555555554cp-5")
_C2 = float.fromhex("-0x1.6c16c16c15177p-10")
_C3 = float.fromhex("0x1.a01a019cb1590p-16")
_C4 = float.fromhex("-0x1.27e4f809c52adp-22")
_C5 = float.fromhex("0x1.1ee9ebdb4b1c4p-29")
_C6 = float.fromhex("-0x1.8fae9be8838d4p-37")


def _two_sum(a, b):
    """s = fl(a + b) and the exact error e = a + b - s, whatever the magnitudes (Knuth)."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _reduce(x):
    """n (integral floats) and x - n pi/2 as y0 + y1, |y0| <~ pi/4, |y1| <= ulp(y0) / 2."""
    n = np.rint(x * _INV_PIO2)
    head = x - n * _PIO2_1  # exact: x and n * _PIO2_1 agree in their leading bits
    head, error_2 = _two_sum(head, -(n * _PIO2_2))
    head, error_3 = _two_sum(head, -(n * _PIO2_3))
    tail = (error_2 + error_3) - n * _PIO2_3T
    y0 = head + tail
    return n, y0, (head - y0) + tail


def sin_cos(x) -> tuple[np.ndarray, np.ndarray]:
    """sin(x) and cos(x), elementwise, from IEEE basic operations in a fixed order.

    fdlibm's algorithm: x - n pi/2 in two doubles (Cody-Waite with a four-part pi/2), then
    its minimax kernels in its Horner order; numpy never fuses a multiply-add, so the bits
    are the same on every CPU. Error < 1 ulp for |x| <= 2**20 pi/2 (about 1.6e6), where
    n * pi/2 is exact to 2**-130 (measured: 0.77 ulp at most; tests/unit/contract/test_numerics_trig.py).
    Up to 2**48, n * _PIO2_1 is rounded: sin and cos of x moved by at most |x| 2**-53
    (half an ulp to an ulp of x). Past 2**48 x is first taken modulo 2**20, not a
    multiple of 2 pi: deterministic values in [-1, 1], not sin and cos of x (0 and 1 from
    2**73 on); accuracy there does not matter to the 1-D model, whose x**2 dominates f by
    far. +-0 keep their sign in sin; inf and NaN give NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    # fmod(x, 2**20), exactly (the product and difference are exact beyond 2**21), and
    # fast: np.fmod takes microseconds per element of 1e300, where a diverging x goes.
    with np.errstate(invalid="ignore"):  # inf - inf = NaN, as sin(inf)
        modulo = x - np.trunc(x * 2.0**-20) * 2.0**20
    n, y0, y1 = _reduce(np.where(np.abs(x) > _HUGE, modulo, x))
    z = y0 * y0
    w = z * z
    # __kernel_sin(y0, y1, 1)
    r = (_S2 + z * (_S3 + z * _S4)) + (z * w) * (_S5 + z * _S6)
    v = z * y0
    sin_kernel = y0 - (((z * (0.5 * y1 - v * r)) - y1) - v * _S1)
    # __kernel_cos(y0, y1)
    r = z * (_C1 + z * (_C2 + z * _C3)) + (w * w) * (_C4 + z * (_C5 + z * _C6))
    half_z = 0.5 * z
    one_minus = 1.0 - half_z
    cos_kernel = one_minus + (((1.0 - one_minus) - half_z) + (z * r - y0 * y1))
    quadrant = n - 4.0 * np.floor(n * 0.25)  # n mod 4, exact; NaN stays NaN
    odd = (quadrant == 1) | (quadrant == 3)
    s = np.where(odd, cos_kernel, sin_kernel)
    c = np.where(odd, sin_kernel, cos_kernel)
    s = np.where(quadrant >= 2, -s, s)
    c = np.where((quadrant == 1) | (quadrant == 2), -c, c)
    return np.where(x == 0, x, s), c  # x - 0 pi/2 turned -0 into +0


def sin(x) -> np.ndarray:
    """sin(x) of ``sin_cos``."""
    return sin_cos(x)[0]


def cos(x) -> np.ndarray:
    """cos(x) of ``sin_cos``."""
    return sin_cos(x)[1]
