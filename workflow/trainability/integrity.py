"""Cheap integrity checks of finished shard files, run when the workflow starts.

A shard file that exists at its final path was complete when it was written
(``io.write_h5`` writes under a temporary name and renames), so a damaged one
was damaged afterwards: truncated by a full disk or a bad copy, overwritten,
half-synced. Snakemake only looks at existence and modification times, so it
would take such a file as done and the merge would fail, or worse, read
garbage. :func:`quarantine_corrupt_shards` finds them before Snakemake builds
its plan and renames them to ``<name>.corrupt-<timestamp>`` (never deletes),
so Snakemake sees the shard as missing and remakes it.

What is checked, without reading the data: the file opens as HDF5; it holds
the expected datasets, all 1-D with the length its own ``n_pixels`` attribute
names; every dataset's bytes lie inside the file (catches truncation); and
the first and last element of each dataset can be read. Bit flips inside the
data itself are not detectable this way (HDF5 stores no checksum for
unfiltered data); the SHA-256 manifest of an archive covers those.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

import h5py

from trainability.statistics import STAT_FIELDS


def shard_problem(path: str | Path, fields: Iterable[str]) -> str | None:
    """Why ``path`` is not a usable shard file, or None when it looks sound."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        return f"cannot stat: {err}"
    if size == 0:
        return "empty file"
    try:
        with h5py.File(path, "r") as h5:
            n_pixels = h5.attrs.get("n_pixels")
            if n_pixels is None or "first_pixel" not in h5.attrs:
                return "attributes n_pixels/first_pixel missing"
            n_pixels = int(n_pixels)
            for name in fields:
                if name not in h5:
                    return f"dataset {name!r} missing"
                ds = h5[name]
                if not isinstance(ds, h5py.Dataset) or ds.shape != (n_pixels,):
                    shape = getattr(ds, "shape", None)
                    return f"dataset {name!r} has shape {shape}, expected ({n_pixels},)"
                problem = _extent_problem(ds, size)
                if problem:
                    return f"dataset {name!r}: {problem}"
                if n_pixels:
                    ds[:1]
                    ds[-1:]
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError, ValueError...
        return f"{type(err).__name__}: {err}"
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


def quarantine_path(path: Path, stamp: str | None = None) -> Path:
    """A free name ``<name>.corrupt-<timestamp>[-n]`` next to ``path``."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    return target


def quarantine_corrupt_shards(
    paths: Iterable[str | Path], fields: Iterable[str] | None = None, dry_run: bool = False
):
    """Check each existing file; rename the damaged ones aside (``dry_run``: only report).

    ``fields``: the datasets a shard must hold (default: ``statistics.STAT_FIELDS``). Returns
    [(path, new_path, problem)] for every damaged file (moved unless ``dry_run``). Files
    that do not exist are skipped (not yet computed).
    """
    moved = []
    for path in map(Path, paths):
        if not path.exists():
            continue
        problem = shard_problem(path, STAT_FIELDS if fields is None else tuple(fields))
        if problem is None:
            continue
        target = quarantine_path(path)
        if not dry_run:
            path.rename(target)
        moved.append((path, target, problem))
    return moved


def is_dry_run(argv: Iterable[str]) -> bool:
    """Whether Snakemake's command line asks for a dry run (-n, --dry-run, --dryrun, or n
    among clustered short flags such as -np): at parse time Snakemake does not say so itself."""
    return any(arg in ("--dry-run", "--dryrun") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in argv)
