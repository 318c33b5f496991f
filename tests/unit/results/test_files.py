"""Atomic writes and shard checks of trainability.results.files."""

import json

import h5py
import numpy as np
import pytest

from trainability.results import files


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "out.h5"
    with files.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".h5" and tmp != target
        tmp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    assert list(target.parent.iterdir()) == [target]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "grid.h5"
    files.write_h5(target, {"a": np.arange(3.0)})
    before = target.read_bytes()
    with pytest.raises(TypeError):
        files.write_h5(target, {"a": np.arange(3.0), "b": np.array([object()])})
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_write_h5_is_deterministic_and_carries_scales(tmp_path):
    data = {"m": np.arange(80 * 80, dtype=float).reshape(80, 80)}
    scales = {"x": ("log10 x", np.linspace(0, 1, 80)), "y": ("log10 y", np.linspace(1, 2, 80))}
    files.write_h5(tmp_path / "a.h5", data, {"cfg": {"k": [1, 2]}}, scales)
    files.write_h5(tmp_path / "b.h5", data, {"cfg": {"k": [1, 2]}}, scales)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    read, attrs = files.read_h5(tmp_path / "a.h5")
    assert attrs["cfg"] == {"k": [1, 2]}
    np.testing.assert_array_equal(read["m"], data["m"])
    with h5py.File(tmp_path / "a.h5") as h5:
        assert h5["m"].dims[0][0].name == "/y" and h5["m"].dims[1][0].name == "/x"


def test_merge_rejects_truncated_missing_and_misplaced_shards(tmp_path):
    fields = ["v"]
    files.write_h5(tmp_path / "s0.h5", {"v": np.zeros(4)}, {"first_pixel": 0})
    files.write_h5(tmp_path / "s1.h5", {"v": np.ones(4)}, {"first_pixel": 4})
    files.write_h5(tmp_path / "s2.h5", {"v": np.full(1, 2.0)}, {"first_pixel": 8})
    shards = [tmp_path / f"s{i}.h5" for i in range(3)]
    merged, _ = files.merge_shards(shards, fields, 3, 4)
    np.testing.assert_array_equal(merged["v"], [[0, 0, 0], [0, 1, 1], [1, 1, 2]])
    with pytest.raises(ValueError, match="3 shards expected, got 2"):
        files.merge_shards(shards[:2], fields, 3, 4)
    with pytest.raises(ValueError, match="starts at pixel 0, expected 4"):
        files.merge_shards([shards[0], shards[0], shards[2]], fields, 3, 4)
    raw = shards[1].read_bytes()
    shards[1].write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="unreadable or incomplete"):
        files.merge_shards(shards, fields, 3, 4)


def _shard(shard, device, processor, kernel, arithmetic):
    source = {"device": {"device": device, "processor": processor}, "arithmetic": arithmetic}
    training = {"resolution": 4}
    return files.shard_attributes(
        "e", 3, shard, (4 * shard, 4 * shard + 4), [[0, 1], [0, 1]], training, kernel, source
    )


def test_grid_attributes_say_where_and_how_each_shard_was_made(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    shards = [
        _shard(0, "cpu", "EPYC", "fused", {"build": "a"}),
        _shard(1, "cpu", "EPYC", "fused", {"build": "a"}),
        _shard(2, "cuda:0", "EPYC", "fused", {"build": "b"})
        | {"device": {"device": "cuda:0", "processor": "EPYC", "gpu": "H100"}},
        _shard(3, "cpu", "Xeon", "torch", {"build": "a"}),
    ]
    assert shards[1]["first_pixel"] == 4 and shards[1]["n_pixels"] == 4 and shards[1]["frame"] == 3
    attrs = files.grid_attributes("e", 3, [[0, 1], [0, 1]], {"resolution": 4}, 4, 3, shards)
    assert attrs["devices"] == ["cpu EPYC", "cpu Xeon", "cuda:0 H100"]
    assert attrs["kernels"] == ["fused", "torch"]
    assert attrs["n_shards"] == 4 and attrs["resolution"] == 4 and attrs["slurm_job_ids"] == ["77"]
    groups = {json.dumps(g["device"], sort_keys=True): g["shards"] for g in attrs["shard_sources"]}
    assert groups['{"device": "cpu", "processor": "EPYC"}'] == [0, 1]
    # Written and read back through HDF5: what a later reader (reuse, archive) sees.
    files.write_h5(tmp_path / "g.h5", {"a": np.zeros(2)}, attrs=attrs)
    _, read = files.read_h5(tmp_path / "g.h5")
    assert read["devices"] == attrs["devices"] and read["shard_sources"] == json.loads(
        json.dumps(attrs["shard_sources"])
    )
