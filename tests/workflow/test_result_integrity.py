"""Every result file a later step reads is checked when the workflow starts (real Snakemake runs).

The two sequences that used to end in "Nothing to be done" with a result missing or damaged:
a valid shard holding the wrong pixels (``cp shard0.h5 shard3.h5``), and a garbage grid.h5.
Also: a merge that fails is retried by the next run, shards are temporary unless
``keep_shards: true``, and a frame mixing arithmetics is refused unless allowed.
"""

import json
import shutil

import h5py
import pytest
import yaml

from trainability.contract import statistics
from trainability.results import files, integrity
from workflow_helpers import TINY_CONFIG, jobs_in, planned_jobs, prepare_workdir, snakemake, write_config

pytestmark = pytest.mark.slow

FRAME = "results/tanh_small/frame0"
SHARDS = f"{FRAME}/shards"
GRID = f"{FRAME}/grid.h5"
SCORES = f"{FRAME}/scores.h5"


def config(**top):
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["experiments"] = {"tanh_small": cfg["experiments"]["tanh_small"]}  # 12^2 pixels, 4 shards
    cfg.update(top)
    return cfg


def output_of(result):
    return result.stdout + result.stderr


def grid_data(workdir):
    data, _ = files.read_h5(workdir / GRID, statistics.STAT_FIELDS)
    return {name: data[name].tobytes() for name in statistics.STAT_FIELDS}


def moved_aside(workdir, directory, tag):
    return sorted(p.name for p in (workdir / directory).glob(f"*.{tag}-*"))


def test_kept_shards_copied_mixed_and_stale(tmp_path):
    """keep_shards: true. A copied shard is moved aside and remade; a merge that fails is
    retried by the next run; results of other training parameters are moved aside."""
    workdir = prepare_workdir(tmp_path / "kept", config(keep_shards=True))
    snakemake(workdir)
    assert len(list((workdir / SHARDS).glob("shard*.h5"))) == 4
    before = grid_data(workdir)
    original = (workdir / SHARDS / "shard2.h5").read_bytes()
    # A valid shard file holding the wrong pixels, newer than the grid (so the merge reruns);
    # shards 0 and 2 have the same size (shard 3, of 24 pixels, is caught by its shape).
    shutil.copyfile(workdir / SHARDS / "shard0.h5", workdir / SHARDS / "shard2.h5")

    result = snakemake(workdir)
    output = output_of(result)
    assert f"Damaged result file {SHARDS}/shard2.h5 (it holds first_pixel = 0, expected 80" in output
    trained = [wc.get("shard") for rule, wc in jobs_in(output) if rule == "train_shard"]
    assert trained == ["2"], "the copy is remade, and only it"
    assert [n.split(".corrupt-")[0] for n in moved_aside(workdir, SHARDS, "corrupt")] == ["shard2.h5"]
    # Remade byte for byte, and merged into the same frame.
    assert (workdir / SHARDS / "shard2.h5").read_bytes() == original
    assert grid_data(workdir) == before
    assert "Nothing to be done" in output_of(snakemake(workdir, "--dry-run"))

    # A merge that fails loses grid.h5 (Snakemake removes a failed job's output); the next run
    # must not say "Nothing to be done" while the scores and figures made from it exist.
    # shard3 recomputed on another kind of machine: sound, same pixels, other arithmetic.
    with h5py.File(workdir / SHARDS / "shard3.h5", "a") as h5:
        record = json.loads(h5.attrs["arithmetic"])
        h5.attrs["arithmetic"] = json.dumps({**record, "device": "cuda NVIDIA H200"})

    failed = snakemake(workdir, check=False)
    output = output_of(failed)
    assert failed.returncode != 0
    log = (workdir / "logs/tanh_small/frame0/merge.log").read_text()
    assert "refused" in log and "2 different arithmetics" in log and f"{SHARDS}/shard3.h5" in log
    assert not (workdir / GRID).exists()
    assert (workdir / SCORES).exists(), "the scores (and figures) of the lost grid are still there"
    assert "merge" in {rule for rule, _ in planned_jobs(workdir)}, "not 'Nothing to be done'"

    # The config allows mixing: merged (same numbers here: the record was the only change).
    cfg = config(keep_shards=True, allow_mixed_arithmetic=True)
    write_config(workdir, cfg)
    snakemake(workdir)
    assert grid_data(workdir) == before
    _, attrs = files.read_h5(workdir / GRID, [])
    sources = attrs["shard_sources"]
    assert len(sources) == 2
    assert sorted(shard for group in sources for shard in group["shards"]) == [0, 1, 2, 3]

    # The config changes: every result of the old parameters is kept aside, new ones made.
    cfg = config(keep_shards=True, allow_mixed_arithmetic=True)
    cfg["experiments"]["tanh_small"]["training"]["steps"] = 31
    write_config(workdir, cfg)
    output = output_of(snakemake(workdir, GRID))
    stale = f"Stale result file {GRID} (made with other training parameters, training.steps: 30 in the file"
    assert stale in output
    assert len(moved_aside(workdir, SHARDS, "stale")) == 4 and len(moved_aside(workdir, FRAME, "stale")) == 1
    _, attrs = files.read_h5(workdir / GRID, [])
    assert attrs["training"]["training"]["steps"] == 31


def test_a_garbage_grid_is_moved_aside_and_remade(tmp_path):
    workdir = prepare_workdir(tmp_path / "garbage", config())  # shards removed after the merge
    snakemake(workdir)
    assert not list((workdir / SHARDS).glob("shard*.h5")), "shards are temporary by default"
    before = grid_data(workdir)
    garbage = b"not an HDF5 file " * 100
    (workdir / GRID).write_bytes(garbage)

    dry = output_of(snakemake(workdir, "--dry-run"))
    assert f"Damaged result file {GRID} (OSError" in dry and "a dry run or an inspection command moves" in dry
    assert (workdir / GRID).read_bytes() == garbage

    result = output_of(snakemake(workdir))
    assert f"Damaged result file {GRID}" in result and "remade by this run" in result
    (aside,) = moved_aside(workdir, FRAME, "corrupt")
    assert (workdir / FRAME / aside).read_bytes() == garbage, "moved aside, never deleted"
    assert grid_data(workdir) == before, "retrained to the same bits"
    assert "Nothing to be done" in output_of(snakemake(workdir, "--dry-run"))

    # scores.h5 damaged the same way: moved aside and remade, the figures after it.
    (workdir / SCORES).write_bytes(garbage)
    result = output_of(snakemake(workdir))
    assert f"Damaged result file {SCORES}" in result
    ran = {rule for rule, _ in jobs_in(result)}
    assert {"score", "figures"} <= ran and not {"merge", "train_shard"} & ran
    assert integrity.structure_problem(workdir / SCORES, ["trainable"], (12, 12)) is None
