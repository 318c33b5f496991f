"""Cheap integrity checks of finished result files, run when the workflow starts.

A result file that exists at its final path was complete when it was written
(``io.write_h5`` writes under a temporary name and renames), so a damaged one
was damaged afterwards: truncated by a full disk or a bad copy, overwritten,
copied from elsewhere. Snakemake only looks at existence, modification times
and its own records, so it would take such a file as done: the merge would
fail (and Snakemake would remove the good grid.h5), or the figures would show
garbage. :func:`inspect_results` checks every shard, grid.h5, scores.h5 and
automatic centre (``centre.json``, :func:`centre_problem`) and only reads; the
workflow then asks Snakemake to remake the bad ones, and once the run holds
Snakemake's lock, :func:`move_aside` renames them (never deletes):

* ``<name>.corrupt-<timestamp>``: not a sound HDF5 result of the expected
  shape, or someone else's file (another experiment, frame or pixel range);
* ``<name>.stale-<timestamp>``: a sound file made with other training
  parameters than the config's (the config was changed, or an old file was
  copied in); the old result is kept, the new one computed.

What is checked, without reading the data: the file opens as HDF5; it holds
the expected datasets, each of the expected shape; every dataset's bytes lie
inside the file (catches truncation); the first and last element of each
dataset can be read (for compressed grids, their chunks decompress); the root
attributes that say whose file it is match. Bit flips inside the data itself
are not detectable this way (HDF5 stores no checksum for unfiltered data); the
SHA-256 manifest of an archive covers those.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from trainability.contract import grid, numerics

# The tags of files moved aside: damaged or someone else's, and made for other parameters.
CORRUPT, STALE = "corrupt", "stale"


@dataclass(frozen=True)
class Expected:
    """What a result file must hold: ``datasets`` of shape ``shape``, root attributes equal to
    ``attrs``, and (when not None) a JSON ``training`` attribute equal to ``training``."""

    datasets: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: Mapping = field(default_factory=dict)
    training: Mapping | None = None


@dataclass(frozen=True)
class ExpectedCentre:
    """What an automatic centre file must hold: its ``experiment``, a centre inside
    ``region`` ([(x_lo, x_hi), (y_lo, y_hi)], where the search keeps it) and ``made_with``
    (the settings the search ran with) equal to the config's (None: not checked); ``precise``:
    the centre of a double-double sequence, whose coordinates may be decimal strings."""

    experiment: str
    region: tuple[tuple[float, float], ...]
    made_with: Mapping | None = None
    precise: bool = False  # a double-double sequence's: its coordinates may be decimal strings


@dataclass(frozen=True)
class Finding:
    """A bad result file: why (``tag`` CORRUPT or STALE, ``reason``) and where it went (or would go)."""

    path: Path
    moved_to: Path
    tag: str
    reason: str
    signature: tuple[int, int, int] = (0, 0, 0)  # inode, size, mtime when inspected


def structure_problem(path: str | Path, datasets: Iterable[str], shape: tuple[int, ...]) -> str | None:
    """Why ``path`` is not a sound HDF5 file with ``datasets`` of ``shape``, or None."""
    return _inspect(path, datasets, shape)[0]


def _inspect(path: str | Path, datasets: Iterable[str], shape: tuple[int, ...]) -> tuple[str | None, dict]:
    """(structure problem or None, root attributes): the file opened once."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        return f"cannot stat: {err}", {}
    if size == 0:
        return "empty file", {}
    try:
        with h5py.File(path, "r") as h5:
            for name in datasets:
                if name not in h5:
                    return f"dataset {name!r} missing", {}
                ds = h5[name]
                if not isinstance(ds, h5py.Dataset) or ds.shape != tuple(shape):
                    found = getattr(ds, "shape", None)
                    return f"dataset {name!r} has shape {found}, expected {tuple(shape)}", {}
                problem = _extent_problem(ds, size)
                if problem:
                    return f"dataset {name!r}: {problem}", {}
                if ds.size:
                    ds[(slice(0, 1),) * ds.ndim]
                    ds[(slice(-1, None),) * ds.ndim]
            return None, {key: plain_attribute(value) for key, value in h5.attrs.items()}
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError, ValueError...
        return f"{type(err).__name__}: {err}", {}


def plain_attribute(value):
    """An HDF5 attribute as a Python value (JSON attributes decoded)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def _first_difference(found, wanted, where: str = "") -> str:
    """The first field where two JSON-like values differ, as ``field: found ... wanted``."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        for key in sorted(set(found) | set(wanted)):
            if _canonical(found.get(key)) != _canonical(wanted.get(key)):
                return _first_difference(found.get(key), wanted.get(key), f"{where}.{key}".lstrip("."))
    return f"{where or 'training'}: {found!r} in the file, {wanted!r} in the config"


def file_problem(path: str | Path, expected: Expected) -> tuple[str, str] | None:
    """(tag, reason) when ``path`` is not the result ``expected`` describes, else None."""
    problem, attrs = _inspect(path, expected.datasets, expected.shape)
    if problem:
        return CORRUPT, problem
    for key, wanted in expected.attrs.items():
        if key not in attrs:
            return CORRUPT, f"attribute {key!r} missing"
        if attrs[key] != wanted:
            return CORRUPT, f"it holds {key} = {attrs[key]!r}, expected {wanted!r} (a copy of another file?)"
    if expected.training is not None:
        try:
            found = json.loads(attrs.get("training", "null"))
        except (TypeError, ValueError):
            return CORRUPT, "attribute 'training' is not JSON"
        if _canonical(found) != _canonical(expected.training):
            difference = _first_difference(found, expected.training)
            return STALE, f"made with other training parameters, {difference}"
    return None


def _extent_problem(ds: h5py.Dataset, file_size: int) -> str | None:
    """Whether the dataset's stored bytes reach past the end of the file."""
    if ds.size == 0:
        return None
    dsid = ds.id
    if ds.chunks is None:
        offset = dsid.get_offset()
        if offset is None:
            return "data never written"
        end = offset + dsid.get_storage_size()
        if end > file_size:
            return f"data ends at byte {end}, file has {file_size} (truncated)"
        return None
    for i in range(dsid.get_num_chunks()):
        info = dsid.get_chunk_info(i)
        end = info.byte_offset + info.size
        if end > file_size:
            return f"chunk {i} ends at byte {end}, file has {file_size} (truncated)"
    return None


def quarantine_path(path: Path, tag: str = CORRUPT, stamp: str | None = None) -> Path:
    """A free name ``<name>.<tag>-<timestamp>[-n]`` next to ``path``."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{tag}-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{tag}-{stamp}-{n}")
        n += 1
    return target


def is_quarantined(name: str) -> bool:
    """Whether a file name is one this module gave a file it moved aside."""
    return re.search(rf"\.({CORRUPT}|{STALE})-[^/]*$", name) is not None


def result_problem(path: str | Path, expected: Expected | ExpectedCentre) -> tuple[str, str] | None:
    """(tag, reason) when ``path`` is not the result ``expected`` describes, else None."""
    if isinstance(expected, ExpectedCentre):
        return centre_file_problem(path, expected)
    return file_problem(path, expected)


def _signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def inspect_results(expected: Mapping[str | Path, Expected | ExpectedCentre]) -> list[Finding]:
    """Check each existing file against what is expected of it; read only, nothing moves.

    Files that do not exist are skipped (not computed yet, or removed as temporary).
    Returns a Finding for every bad file, in the given order, with the name
    :func:`move_aside` would give it.
    """
    findings, stamp = [], time.strftime("%Y%m%dT%H%M%S")
    for path, wanted in expected.items():
        path = Path(path)
        if not path.exists():
            continue
        problem = result_problem(path, wanted)
        if problem is None:
            continue
        tag, reason = problem
        findings.append(Finding(path, quarantine_path(path, tag, stamp), tag, reason, _signature(path)))
    return findings


def move_aside(findings: Iterable[Finding]) -> list[Finding]:
    """Rename each file found bad to a free ``<name>.<tag>-<time>`` beside it; call only while
    holding Snakemake's lock. A file changed or gone since :func:`inspect_results` looked at it
    is left alone. Returns the findings moved, with the names they got."""
    moved = []
    for finding in findings:
        if not finding.path.exists() or _signature(finding.path) != finding.signature:
            continue
        target = quarantine_path(finding.path, finding.tag)
        finding.path.rename(target)
        moved.append(Finding(finding.path, target, finding.tag, finding.reason, finding.signature))
    return moved


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def centre_problem(data, expected: ExpectedCentre) -> tuple[str, str] | None:
    """(tag, reason) when ``data`` (a centre file's parsed JSON) is not the automatic centre
    ``expected`` describes, else None."""
    if not isinstance(data, dict):
        return CORRUPT, f"not a JSON object but {type(data).__name__}"
    if data.get("experiment") != expected.experiment:
        found = data.get("experiment")
        return CORRUPT, f"it holds experiment = {found!r}, expected {expected.experiment!r} (a copy?)"
    centre = data.get("centre")
    # Numbers, or for double-double sequences decimal strings (their digits past float64's).
    number = numerics.is_precise_number if expected.precise else _finite_number
    if not (isinstance(centre, list) and len(centre) == 2 and all(map(number, centre))):
        strings = " (or decimal strings)" if expected.precise else ""
        return CORRUPT, f"'centre' must be two finite numbers [x, y]{strings}, got {centre!r}"
    for value, (lo, hi), axis in zip(centre, expected.region, "xy"):
        if not lo <= float(value) <= hi:
            return CORRUPT, (
                f"its centre {axis} = {value!r} lies outside [{lo!r}, {hi!r}], the part of the "
                "configured window where the search keeps it"
            )
    if expected.made_with is not None and _canonical(data.get("made_with")) != _canonical(expected.made_with):
        difference = _first_difference(data.get("made_with"), expected.made_with, "made_with")
        return STALE, f"found with other settings, {difference}"
    return None


def centre_file_problem(path: str | Path, expected: ExpectedCentre) -> tuple[str, str] | None:
    """:func:`centre_problem` of the file at ``path`` (unreadable or not JSON: CORRUPT)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return CORRUPT, f"not a readable JSON file ({type(err).__name__}: {err})"
    return centre_problem(data, expected)


def frame_window(spec, centre_file: str | Path | None, experiment: str) -> list[list[float]]:
    """A frame's window [[x_lo, x_hi], [y_lo, y_hi]] from its ``grid.window_spec``; an automatic
    centre is read from ``centre_file`` and checked first (structure, experiment, region): a
    bad one stops the job, naming the file, before anything is trained about it."""
    if not isinstance(spec, dict) or spec["centre"] != "auto":
        return grid.resolve_window_spec(spec)
    if centre_file is None:
        raise ValueError(
            f"experiment {experiment!r}: this frame's centre is automatic; centre.json is missing"
        )
    region = tuple(grid.centre_region(spec["window0"], "auto"))
    expected = ExpectedCentre(experiment, region, precise=bool(spec.get("precise")))
    problem = centre_file_problem(centre_file, expected)
    if problem:
        raise ValueError(f"{centre_file}: {problem[1]}; remove it and run again to find the centre anew")
    return grid.resolve_window_spec(spec, json.loads(Path(centre_file).read_text())["centre"])
