"""Cheap integrity checks of finished result files, run when the workflow starts.

A result file that exists at its final path was complete when it was written
(``io.write_h5`` writes under a temporary name and renames), so a damaged one
was damaged afterwards: truncated by a full disk or a bad copy, overwritten,
copied from elsewhere. Snakemake only looks at existence, modification times
and its own records, so it would take such a file as done: the merge would
fail (and Snakemake would remove the good grid.h5), or the figures would show
garbage. :func:`quarantine_results` checks every shard, grid.h5 and scores.h5
before Snakemake builds its plan and renames the bad ones aside (never
deletes), so that Snakemake sees them as missing and remakes them:

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
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

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
class Finding:
    """A bad result file: why (``tag`` CORRUPT or STALE, ``reason``) and where it went (or would go)."""

    path: Path
    moved_to: Path
    tag: str
    reason: str


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
            return None, {key: _plain(value) for key, value in h5.attrs.items()}
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError, ValueError...
        return f"{type(err).__name__}: {err}", {}


def _plain(value):
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


def quarantine_results(expected: Mapping[str | Path, Expected], dry_run: bool = False) -> list[Finding]:
    """Check each existing file against what is expected of it; rename the bad ones aside.

    Files that do not exist are skipped (not computed yet, or removed as temporary).
    ``dry_run``: only report. Returns a Finding for every bad file, in the given order.
    """
    findings = []
    for path, wanted in expected.items():
        path = Path(path)
        if not path.exists():
            continue
        problem = file_problem(path, wanted)
        if problem is None:
            continue
        tag, reason = problem
        target = quarantine_path(path, tag)
        if not dry_run:
            path.rename(target)
        findings.append(Finding(path, target, tag, reason))
    return findings


def is_dry_run(argv: Iterable[str]) -> bool:
    """Whether Snakemake's command line asks for a dry run (-n, --dry-run, --dryrun, or n
    among clustered short flags such as -np): at parse time Snakemake does not say so itself."""
    return any(arg in ("--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in argv)
