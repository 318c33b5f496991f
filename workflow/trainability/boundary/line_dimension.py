"""Liu's (arXiv:2406.13971) box-counting dimension of a boundary on a line of hyperparameters.

Labels (trained / diverged, or any values compared with ``!=``) at 2**K + 1 equally
spaced points. Level k = 0..K keeps every 2**(K - k)-th point (2**k + 1 points, the
two ends always included) and counts the label changes between neighbours, N(k). A
boundary of finitely many points gives N(k) constant once the grid resolves them; a
fractal one of dimension d gives N(k) ~ 2**(d k). The dimension is the least-squares
slope of log2 N(k) against k over a range of levels. N is non-decreasing in k (a
change between two kept neighbours is a change somewhere between them one level down).

Default range (``fit``): from the first level where N reaches ``MIN_CHANGES`` to K,
since the coarse levels, where the grid cannot see the structure yet, are what the
slope should leave out; the start is moved down to K - 2 when that leaves fewer than
three levels (never below the first level with a change). If N never reaches
``MIN_CHANGES`` the range starts at the first level with a change (finitely many
boundary points: the slope is small, 0 for a single one). No change at any level:
no boundary, dimension NaN (not an exception), ``reason`` says so; so too when the
range is a single level (K = 0, or changes only at level K).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainability.contract import numerics

MIN_CHANGES = 8  # a level with this many changes starts the default scaling range


def levels(n_points: int) -> int:
    """K for 2**K + 1 points; ValueError naming the rule otherwise."""
    K = int(n_points - 1).bit_length() - 1
    if n_points < 2 or 2**K + 1 != n_points:
        raise ValueError(f"labels must hold 2**K + 1 points (K >= 0: 2, 3, 5, 9, ...), got {n_points}")
    return K


def change_counts(labels) -> tuple[np.ndarray, np.ndarray]:
    """(ks, counts): N(k) label changes between neighbours of every 2**(K - k)-th point."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {lab.shape}")
    K = levels(lab.size)
    ks = np.arange(K + 1)
    counts = np.empty(K + 1, dtype=np.int64)
    for k in ks:
        sub = lab[:: 2 ** (K - k)]
        counts[k] = np.count_nonzero(sub[1:] != sub[:-1])
    return ks, counts


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _num(x: float | None) -> float:
    return np.nan if x is None else float(x)


@dataclass(frozen=True)
class LineDimension:
    """Change counts per level and the fitted slope of log2 N(k) over [k_min, k_max]."""

    ks: tuple[int, ...]
    counts: tuple[int, ...]
    dimension: float  # slope; NaN without a fit
    intercept: float  # log2 N at k = 0 of the fitted line; NaN without a fit
    k_min: int | None  # the levels fitted (None without a boundary)
    k_max: int | None
    boundary: bool  # some level has a label change
    reason: str = ""  # why there is no fit ("" when there is one)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; NaN becomes None."""
        return {
            "ks": [int(k) for k in self.ks],
            "counts": [int(c) for c in self.counts],
            "dimension": _json_float(self.dimension),
            "intercept": _json_float(self.intercept),
            "k_min": self.k_min,
            "k_max": self.k_max,
            "boundary": bool(self.boundary),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineDimension:
        return cls(
            ks=tuple(int(k) for k in data["ks"]),
            counts=tuple(int(c) for c in data["counts"]),
            dimension=_num(data["dimension"]),
            intercept=_num(data["intercept"]),
            k_min=None if data["k_min"] is None else int(data["k_min"]),
            k_max=None if data["k_max"] is None else int(data["k_max"]),
            boundary=bool(data["boundary"]),
            reason=str(data["reason"]),
        )


def default_range(counts) -> tuple[int, int] | None:
    """The default (k_min, k_max) for N(k) = ``counts`` (module docstring), or None: no change."""
    counts = np.asarray(counts)
    K = counts.size - 1
    changed = np.nonzero(counts > 0)[0]
    if changed.size == 0:
        return None
    first = int(changed[0])
    reached = np.nonzero(counts >= MIN_CHANGES)[0]
    k_min = int(reached[0]) if reached.size else first
    return max(min(k_min, K - 2), first), K


def fit(labels, k_min: int | None = None, k_max: int | None = None) -> LineDimension:
    """Liu's dimension of the label boundary on a line of 2**K + 1 points.

    ``k_min``/``k_max`` default to ``default_range`` (a given k_max below its start
    moves the start to k_max); they must satisfy 0 <= k_min <= k_max <= K and, when
    there is a boundary, N(k_min) > 0 (log2 of 0 is undefined): else ValueError.
    """
    ks, counts = change_counts(labels)
    K = int(ks[-1])
    default = default_range(counts)
    hi = int(k_max) if k_max is not None else K
    # a given k_max below the default start pulls the start down with it
    lo = int(k_min) if k_min is not None else min(default[0] if default else 0, hi)
    if not 0 <= lo <= hi <= K:
        raise ValueError(f"need 0 <= k_min <= k_max <= K = {K}, got k_min={lo}, k_max={hi}")
    base = {"ks": tuple(int(k) for k in ks), "counts": tuple(int(c) for c in counts)}
    nofit = {"dimension": np.nan, "intercept": np.nan, "k_min": None, "k_max": None}
    if default is None:  # N is non-decreasing: no change at K means none anywhere
        return LineDimension(
            **base, **nofit, boundary=False, reason="no boundary: no label change at any level"
        )
    if counts[lo] == 0:
        raise ValueError(f"k_min={lo} has no label change (N = 0): log2 N is undefined there")
    if hi == lo:
        return LineDimension(
            **base,
            **(nofit | {"k_min": lo, "k_max": hi}),
            boundary=True,
            reason=f"the fit range k = {lo}..{hi} is one level",
        )
    sel = slice(lo, hi + 1)
    slope, intercept = _line_fit(ks[sel].astype(float), numerics.log2(counts[sel].astype(float)))
    return LineDimension(
        **base, dimension=float(slope), intercept=float(intercept), k_min=lo, k_max=hi, boundary=True
    )


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y on x in closed form, summed in a fixed order
    (``numpy.polyfit`` goes through LAPACK, whose last bits follow the CPU's vector unit)."""
    dx = x - x.mean()
    slope = float((dx * (y - y.mean())).sum() / (dx * dx).sum())
    return slope, float(y.mean() - slope * x.mean())
