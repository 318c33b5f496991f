"""A shard's pixels taken from its frame's finished grid instead of being trained again.

Snakemake decides what to rerun from file times and recorded settings, before any job
runs. When an automatic centre is found again (``centre.json`` deleted, or its job
rerun), every frame depends on the new file, so every shard job runs, although a
deterministic search returns the same centre bit for bit and each frame's pixels would
come out the same. A shard job therefore first looks at its frame's grid.h5: when that
file is sound and was made with exactly this job's inputs (training settings, window to
the bit, shard layout, ``RESULTS_VERSION``) and this shard with the arithmetic this job
would use, training again would reproduce the stored pixels bit for bit, so they are
copied with their provenance. Anything else (another centre, window, setting, code
version, device or kernel) trains.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from trainability.contract.statistics import STAT_FIELDS
from trainability.results import integrity


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def _recorded_source(sources, shard: int) -> dict | None:
    """The {device, arithmetic} a grid records for one of its shards."""
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict) and shard in source.get("shards", ()):
            return source
    return None


def finished_pixels(
    grid_path: str | Path,
    *,
    shard: int,
    start: int,
    stop: int,
    training: Mapping,
    window,
    shard_size: int,
    results_version: int,
    arithmetic: Mapping,
) -> tuple[dict[str, np.ndarray], dict] | tuple[None, str]:
    """(statistics of pixels start..stop-1, their recorded {device, arithmetic}) when the grid
    at ``grid_path`` holds them as this job would compute them; else (None, why not)."""
    path = Path(grid_path)
    if not path.is_file():
        return None, "no finished grid"
    resolution = training["resolution"]
    problem = integrity.structure_problem(path, STAT_FIELDS, (resolution, resolution))
    if problem:
        return None, f"the grid is not sound ({problem})"
    with h5py.File(path, "r") as h5:
        attrs = {key: integrity.plain_attribute(value) for key, value in h5.attrs.items()}
        recorded = {}
        for key in ("training", "window_log10", "shard_sources"):
            try:
                recorded[key] = json.loads(attrs.get(key, "null"))
            except (TypeError, ValueError):
                return None, f"its attribute {key!r} is not JSON"
        wanted = {
            "training": training,
            "window_log10": [list(map(float, axis)) for axis in window],
            "shard_size": shard_size,
            "results_version": results_version,
        }
        recorded.update(shard_size=attrs.get("shard_size"), results_version=attrs.get("results_version"))
        for key, value in wanted.items():
            if _canonical(recorded[key]) != _canonical(value):
                return None, f"it was made with another {key}"
        source = _recorded_source(recorded["shard_sources"], shard)
        if source is None or _canonical(source.get("arithmetic")) != _canonical(dict(arithmetic)):
            return None, "this shard was computed with another arithmetic"
        stats = {name: h5[name][()].reshape(-1)[start:stop] for name in STAT_FIELDS}
    return stats, {"device": source.get("device"), "arithmetic": source.get("arithmetic")}
