"""HDF5 files of the workflow, written atomically, and their provenance.

Every file is written under a temporary name in its final directory and
renamed when complete, so a crashed or killed job never leaves a file that a
later step could take as finished. HDF5 files carry no timestamps
(``track_times=False``): the same data gives the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np

import trainability
from trainability.contract import grid

FORMAT_VERSION = 1


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name keeps the real suffix last (tools infer formats from it).
    On error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _attr(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "null"
    return value


def write_h5(
    path: str | Path,
    datasets: Mapping[str, np.ndarray],
    attrs: Mapping | None = None,
    scales: Mapping[str, tuple[str, np.ndarray]] | None = None,
) -> None:
    """Write datasets and root attributes atomically.

    ``scales`` maps an axis name to (description, coordinates): stored as an
    HDF5 dimension scale and attached to every 2-D dataset (rows = y, columns = x).
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as h5:
            h5.attrs["format_version"] = FORMAT_VERSION
            for key, value in (attrs or {}).items():
                h5.attrs[key] = _attr(value)
            scale_sets = {}
            for name, (description, coords) in (scales or {}).items():
                ds = h5.create_dataset(name, data=np.asarray(coords), track_times=False)
                ds.attrs["description"] = description
                ds.make_scale(name)
                scale_sets[name] = ds
            for key, data in datasets.items():
                data = np.asarray(data)
                kwargs = {}
                if data.ndim == 2 and data.size >= 4096:
                    chunk = tuple(min(256, s) for s in data.shape)
                    kwargs = dict(chunks=chunk, compression="gzip", shuffle=True)
                ds = h5.create_dataset(key, data=data, track_times=False, **kwargs)
                if data.ndim == 2 and {"y", "x"} <= set(scale_sets):
                    ds.dims[0].attach_scale(scale_sets["y"])
                    ds.dims[1].attach_scale(scale_sets["x"])


def read_h5(path: str | Path, names=None) -> tuple[dict[str, np.ndarray], dict]:
    """Datasets (all, or ``names``) and root attributes (JSON attrs decoded)."""
    with h5py.File(path, "r") as h5:
        keys = list(h5.keys()) if names is None else list(names)
        data = {k: h5[k][()] for k in keys}
        attrs = {}
        for key, value in h5.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and value[:1] in "[{" or value == "null":
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            attrs[key] = value.item() if isinstance(value, np.generic) else value
    return data, attrs


def check_shard(path: str | Path, fields, n_pixels: int) -> None:
    """Raise ValueError when a shard file is unreadable or incomplete."""
    try:
        data, attrs = read_h5(path, fields)
    except (OSError, KeyError) as err:
        raise ValueError(f"shard {path} is unreadable or incomplete: {err}") from err
    for name in fields:
        if data[name].shape != (n_pixels,):
            raise ValueError(f"shard {path}: {name} has shape {data[name].shape}, expected ({n_pixels},)")


def merge_shards(
    shard_paths, fields, resolution: int, shard_size: int
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Assemble shard files (in shard order) into (R, R) arrays per field.

    Shard bounds are those of :func:`grid.shard_pixels`, which the training jobs used.
    """
    n = resolution * resolution
    expected = grid.shard_count(resolution, shard_size)
    if len(shard_paths) != expected:
        raise ValueError(f"{expected} shards expected, got {len(shard_paths)}")
    merged = {}
    shard_attrs = []
    for shard, path in enumerate(shard_paths):
        start, stop = grid.shard_pixels(shard, resolution, shard_size)
        check_shard(path, fields, stop - start)
        data, attrs = read_h5(path, fields)
        if attrs.get("first_pixel") != start:
            raise ValueError(f"shard {path} starts at pixel {attrs.get('first_pixel')}, expected {start}")
        for name in fields:
            if name not in merged:
                merged[name] = np.empty(n, dtype=data[name].dtype)
            merged[name][start:stop] = data[name]
        shard_attrs.append(attrs)
    return {k: v.reshape(resolution, resolution) for k, v in merged.items()}, shard_attrs


def shard_attributes(
    experiment: str,
    frame: int,
    shard: int,
    pixels: tuple[int, int],
    window,
    training: dict,
    kernel: str,
    source: dict,
) -> dict:
    """What each shard file records: which pixels of which frame, trained how, where (``source``:
    its ``device`` and ``arithmetic``, those of the shard its pixels were copied from when reused)."""
    start, stop = pixels
    return {
        "experiment": experiment,
        "frame": frame,
        "shard": shard,
        "first_pixel": start,
        "n_pixels": stop - start,
        "window": window,
        "training": training,
        "device": source["device"],
        "kernel": kernel,
        "arithmetic": source["arithmetic"],
        "versions": software_versions(),
    }


def grid_attributes(
    experiment: str,
    frame: int,
    window,
    training: dict,
    shard_size: int,
    results_version: int,
    shard_attrs: list[dict],
) -> dict:
    """What each merged grid.h5 records: its frame, window and training, and where and how its
    shards (``shard_attributes``, which may be removed later) were computed."""
    devices = {
        a["device"]["device"] + " " + a["device"].get("gpu", a["device"]["processor"]) for a in shard_attrs
    }
    return {
        "experiment": experiment,
        "frame": frame,
        "window_log10": window,
        "resolution": training["resolution"],
        "shard_size": shard_size,
        "n_shards": len(shard_attrs),
        "training": training,
        "results_version": results_version,
        "devices": sorted(devices),
        "kernels": sorted({a.get("kernel", "unknown") for a in shard_attrs}),
        "shard_sources": shard_sources(shard_attrs),
        "versions": software_versions(),
        "slurm_job_ids": sorted({os.environ.get("SLURM_JOB_ID", "")} - {""}),
    }


def shard_sources(shard_attrs: list[dict]) -> list[dict]:
    """The shards grouped by where and how they were computed: [{device, arithmetic, shards}]."""
    groups: dict[str, dict] = {}
    for attrs in shard_attrs:
        source = {"device": attrs.get("device"), "arithmetic": attrs.get("arithmetic")}
        group = groups.setdefault(json.dumps(source, sort_keys=True), {**source, "shards": []})
        group["shards"].append(attrs.get("shard"))
    return list(groups.values())


def software_versions() -> dict[str, str]:
    """Versions of what computed a result (from package metadata: nothing is imported)."""
    versions = {
        "trainability": trainability.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
    }
    for name in ("torch", "triton", "snakemake"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")


def read_json(path: str | Path):
    with open(path) as fh:
        return json.load(fh)


def read_json_lines(path: str | Path) -> tuple[list, list[int]]:
    """(records, numbers of the lines that are not JSON) of a JSON-lines log; a missing file
    has none. A log must never stop the work it records: bad lines are reported, not raised."""
    path = Path(path)
    if not path.is_file():
        return [], []
    records, bad = [], []
    text = path.read_bytes().decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            bad.append(number)
    return records, bad
