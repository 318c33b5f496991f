"""Integrity checks of result files (trainability.results.integrity): damaged, foreign, stale
results and centres; inspecting only reads, moving renames and never deletes."""

import json

import h5py
import numpy as np
import pytest

from trainability.contract import statistics
from trainability.results import files, integrity


def write_shard(path, n=8, first=0, fields=statistics.STAT_FIELDS, chunked=False, training=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.attrs["n_pixels"] = n
        h5.attrs["first_pixel"] = first
        h5.attrs["experiment"] = "e"
        h5.attrs["training"] = json.dumps(training or TRAINING)
        for name in fields:
            h5.create_dataset(
                name, data=np.arange(n, dtype=np.float64), chunks=(max(1, n // 4),) if chunked else None
            )
    return path


TRAINING = {"training": {"steps": 30, "batch": "full"}, "resolution": 12}


def expected(n=8, first=0, training=TRAINING):
    attrs = {"experiment": "e", "first_pixel": first, "n_pixels": n}
    return integrity.Expected(statistics.STAT_FIELDS, (n,), attrs, training)


def structure(path, fields=statistics.STAT_FIELDS, n=8):
    return integrity.structure_problem(path, fields, (n,))


def test_a_sound_shard_passes(tmp_path):
    assert integrity.file_problem(write_shard(tmp_path / "s.h5"), expected()) is None
    assert integrity.file_problem(write_shard(tmp_path / "c.h5", n=64, chunked=True), expected(64)) is None


@pytest.mark.parametrize("chunked", [False, True])
def test_truncation_is_detected(tmp_path, chunked):
    path = write_shard(tmp_path / "s.h5", n=4096, chunked=chunked)
    size = path.stat().st_size
    for keep in (size - 1, size - 5000, size // 2, 100, 0):
        damaged = tmp_path / f"t{keep}.h5"
        damaged.write_bytes(path.read_bytes()[:keep])
        assert structure(damaged, n=4096), keep
        assert integrity.file_problem(damaged, expected(4096))[0] == integrity.CORRUPT


def test_a_damaged_compressed_grid_is_detected(tmp_path):
    """grid.h5 and scores.h5 are chunked and gzip-compressed: the last chunk must decompress."""
    path = tmp_path / "grid.h5"
    files.write_h5(path, {name: np.random.default_rng(0).random((96, 96)) for name in statistics.STAT_FIELDS})
    assert integrity.structure_problem(path, statistics.STAT_FIELDS, (96, 96)) is None
    assert "expected (97, 97)" in integrity.structure_problem(path, statistics.STAT_FIELDS, (97, 97))
    data = bytearray(path.read_bytes())
    with h5py.File(path) as h5:
        ds = h5[statistics.STAT_FIELDS[-1]]
        last = ds.id.get_chunk_info(ds.id.get_num_chunks() - 1)
    data[last.byte_offset : last.byte_offset + 64] = bytes(64)  # inside the file: extents look fine
    path.write_bytes(bytes(data))
    assert integrity.structure_problem(path, statistics.STAT_FIELDS, (96, 96))


def test_overwritten_header_and_missing_pieces_are_detected(tmp_path):
    path = write_shard(tmp_path / "s.h5")
    data = bytearray(path.read_bytes())
    data[:512] = bytes(512)
    (tmp_path / "zeroed.h5").write_bytes(bytes(data))
    assert "OSError" in structure(tmp_path / "zeroed.h5")

    fields = statistics.STAT_FIELDS
    short = write_shard(tmp_path / "short.h5", fields=fields[:-1])
    assert f"{fields[-1]!r} missing" in structure(short)
    assert "expected (9,)" in structure(write_shard(tmp_path / "wrong.h5"), n=9)
    (tmp_path / "text.h5").write_text("not hdf5")
    assert structure(tmp_path / "text.h5")


def test_someone_elses_file_is_corrupt_and_other_parameters_are_stale(tmp_path):
    copy = write_shard(tmp_path / "shard3.h5", first=0)  # e.g. cp shard0.h5 shard3.h5
    tag, reason = integrity.file_problem(copy, expected(first=24))
    assert tag == integrity.CORRUPT and "first_pixel = 0, expected 24" in reason
    other = dict(TRAINING, training={"steps": 40, "batch": "full"})
    tag, reason = integrity.file_problem(write_shard(tmp_path / "old.h5", training=other), expected())
    assert tag == integrity.STALE
    assert "other training parameters, training.steps: 40 in the file, 30 in the config" in reason
    with h5py.File(copy, "a") as h5:
        del h5.attrs["experiment"]
    assert integrity.file_problem(copy, expected())[1] == "attribute 'experiment' missing"


def test_inspection_only_reads_and_moving_renames_never_deletes(tmp_path):
    good = write_shard(tmp_path / "good.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(good.read_bytes()[:200])
    original = bad.read_bytes()
    stale = write_shard(tmp_path / "stale.h5", training={"other": 1})
    wanted = {good: expected(), bad: expected(), stale: expected(), tmp_path / "absent.h5": expected()}
    before = sorted(p.name for p in tmp_path.iterdir())
    found = integrity.inspect_results(wanted)
    assert [(f.path, f.tag) for f in found] == [(bad, integrity.CORRUPT), (stale, integrity.STALE)]
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "inspecting moves nothing"
    moved = integrity.move_aside(found)
    assert moved[0].moved_to.name.startswith("bad.h5.corrupt-") and moved[0].moved_to.read_bytes() == original
    assert moved[1].moved_to.name.startswith("stale.h5.stale-") and moved[1].moved_to.exists()
    assert all(integrity.is_quarantined(f.moved_to.name) for f in moved)
    assert not integrity.is_quarantined("shard1.h5") and not integrity.is_quarantined("corrupt-1.h5")
    assert good.exists() and not bad.exists() and not stale.exists()
    # A second damaged file with the same timestamp gets its own name.
    bad.write_bytes(original)
    again = integrity.move_aside(integrity.inspect_results({bad: expected()}))
    assert again[0].moved_to != moved[0].moved_to and moved[0].moved_to.exists()


def test_a_file_changed_since_it_was_inspected_is_not_moved(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    found = integrity.inspect_results({bad: expected()})
    assert len(found) == 1
    bad.write_bytes(b"rewritten by the run that held the lock")  # another size: another file
    assert integrity.move_aside(found) == [] and bad.exists()
    bad.unlink()
    assert integrity.move_aside(found) == []


REGION = ((0.0, 2.0), (1.0, 3.0))


MADE_WITH = {"training": {"steps": 30}, "search": {"factor": 2}, "kernel": "auto", "results_version": 3}


def centre_record(**changes):
    return {"experiment": "e", "centre": [1.5, 2.5], "made_with": MADE_WITH, **changes}


@pytest.mark.parametrize(
    "record, tag, words",
    [
        (centre_record(), None, None),
        ([1.5, 2.5], integrity.CORRUPT, "not a JSON object but list"),
        ({"foo": 1}, integrity.CORRUPT, "experiment = None, expected 'e'"),
        (centre_record(experiment="f"), integrity.CORRUPT, "experiment = 'f', expected 'e'"),
        (centre_record(centre=[1.5]), integrity.CORRUPT, "two finite numbers"),
        (centre_record(centre=[1.5, float("nan")]), integrity.CORRUPT, "two finite numbers"),
        (centre_record(centre=["1.5", 2.5]), integrity.CORRUPT, "two finite numbers"),
        (centre_record(centre=[10, 10]), integrity.CORRUPT, "centre x = 10 lies outside [0.0, 2.0]"),
        (centre_record(centre=[1.0, 0.5]), integrity.CORRUPT, "centre y = 0.5 lies outside [1.0, 3.0]"),
        (
            centre_record(made_with={**MADE_WITH, "search": {"factor": 3}}),
            integrity.STALE,
            "made_with.search.factor: 3 in the file, 2 in the config",
        ),
        (centre_record(made_with=None), integrity.STALE, "found with other settings"),
    ],
)
def test_a_centre_file_is_checked(record, tag, words):
    problem = integrity.centre_problem(record, integrity.ExpectedCentre("e", REGION, MADE_WITH))
    if tag is None:
        assert problem is None
    else:
        assert problem[0] == tag and words in problem[1], problem


@pytest.mark.parametrize(
    "centre, words",
    [
        (["1.50000000000000000000000000000001", "2.5"], None),
        ([1.5, "2.5e0"], None),
        (["1.5x", "2.5"], "two finite numbers [x, y] (or decimal strings)"),
        (["inf", "2.5"], "two finite numbers"),
        (["", "2.5"], "two finite numbers"),
        (["10.000000000000000000000000001", "2.5"], "lies outside [0.0, 2.0]"),
    ],
)
def test_a_double_double_centre_may_keep_its_digits_as_decimal_strings(centre, words):
    expected = integrity.ExpectedCentre("e", REGION, MADE_WITH, precise=True)
    problem = integrity.centre_problem(centre_record(centre=centre), expected)
    if words is None:
        assert problem is None
    else:
        assert problem[0] == integrity.CORRUPT and words in problem[1], problem


def test_an_unreadable_centre_file_is_damaged_and_a_job_refuses_it(tmp_path):
    expected_centre = integrity.ExpectedCentre("e", REGION, MADE_WITH)
    for content in (b"{not json", b"\xff\xfe binary", b""):
        path = tmp_path / "centre.json"
        path.write_bytes(content)
        tag, reason = integrity.centre_file_problem(path, expected_centre)
        assert tag == integrity.CORRUPT and "not a readable JSON file" in reason
    spec = {"centre": "auto", "window0": [[-1.0, 3.0], [-1.0, 5.0]], "factor": 2, "frame": 1}
    path.write_text(json.dumps(centre_record(centre=[10, 10])))
    with pytest.raises(ValueError, match=r"centre.json: its centre x = 10 lies outside \[0.0, 2.0\]"):
        integrity.frame_window(spec, path, "e")
    path.write_text(json.dumps(centre_record(centre=[1.0, 2.0])))
    assert integrity.frame_window(spec, path, "e") == [[0.0, 2.0], [0.5, 3.5]]
    with pytest.raises(ValueError, match="centre.json is missing"):
        integrity.frame_window(spec, None, "e")
