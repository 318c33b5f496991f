"""Faults without a cluster: damaged shard files, injected failures, unset profile variables.

The SLURM versions (scancel, interrupts, sbatch rejections) are in test_slurm.py.
"""

import json
import os
import re
import subprocess
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import yaml

from trainability.contract import statistics
from trainability.ops import cluster
from trainability.results import files, integrity
from workflow_helpers import TINY_CONFIG, planned_jobs, prepare_workdir, snakemake, snakemake_command

SHARDS = "results/tanh_small/frame0/shards"
GRID = "results/tanh_small/frame0/grid.h5"


def one_experiment_config(name="tanh_small"):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {name: config["experiments"][name]}
    return config


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


# ----------------------------------------------------------------- integrity unit tests


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


@pytest.mark.slow
def test_a_damaged_shard_is_moved_aside_and_remade(tmp_path):
    config = one_experiment_config()
    config["keep_shards"] = True  # the test damages shards of a merged frame
    workdir = prepare_workdir(tmp_path / "run", config)
    shard_targets = [f"{SHARDS}/shard{i}.h5" for i in range(4)]
    snakemake(workdir, *shard_targets)  # a run that stopped before the merge
    shards = {p.name: p for p in sorted((workdir / SHARDS).glob("shard*.h5"))}
    assert len(shards) == 4
    before = {n: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for n, p in shards.items()}

    # After the fact: shard1 truncated (a full disk, an interrupted copy),
    # shard2's header overwritten.
    damaged = {"shard1.h5": before["shard1.h5"][2][: len(before["shard1.h5"][2]) // 2]}
    header = bytearray(before["shard2.h5"][2])
    header[:64] = b"garbage!" * 8
    damaged["shard2.h5"] = bytes(header)
    for name, data in damaged.items():
        shards[name].write_bytes(data)

    # A dry run reports them and moves nothing.
    dry = snakemake(workdir, GRID, "-n")
    for name in damaged:
        assert f"Damaged result file {SHARDS}/{name}" in dry.stdout + dry.stderr
        assert "a dry run or an inspection command moves nothing" in dry.stdout + dry.stderr
        assert shards[name].read_bytes() == damaged[name]
    assert not list((workdir / SHARDS).glob("*.corrupt-*"))

    # The next run notices, moves both aside, remakes exactly those two and merges.
    result = snakemake(workdir, GRID)
    output = result.stdout + result.stderr
    for name in damaged:
        assert f"Damaged result file {SHARDS}/{name}" in output
        assert "remade by this run" in output
        assert f"Moved {SHARDS}/{name} aside to {name}.corrupt-" in output
    jobs = sorted((rule, wc.get("shard")) for rule, wc in planned_jobs_from(output))
    assert jobs == [("merge", None), ("train_shard", "1"), ("train_shard", "2")]
    corrupt = {p.name.split(".corrupt-")[0]: p.read_bytes() for p in (workdir / SHARDS).glob("*.corrupt-*")}
    assert corrupt == damaged, "moved aside, never deleted or changed"
    for name in ("shard0.h5", "shard3.h5"):  # untouched, not recomputed
        st = shards[name].stat()
        assert (st.st_ino, st.st_mtime_ns) == before[name][:2]
    originals = tmp_path / "originals"
    originals.mkdir()
    for name, (_, _, data) in before.items():
        (originals / name).write_bytes(data)
    for name in damaged:  # remade: the same numbers
        assert_same_data(shards[name], originals / name)
    undisturbed, _ = files.merge_shards(
        [originals / f"shard{i}.h5" for i in range(4)], statistics.STAT_FIELDS, 12, 40
    )
    merged, _ = files.read_h5(workdir / GRID, statistics.STAT_FIELDS)
    for name in statistics.STAT_FIELDS:
        assert merged[name].tobytes() == undisturbed[name].tobytes(), name

    # Damage after the frame was merged: the damage made the shard newer than the frame,
    # so Snakemake merges again; the shard is moved aside and remade first, and the
    # frame comes out the same. Nothing else is recomputed.
    grid_before, _ = files.read_h5(workdir / GRID, statistics.STAT_FIELDS)
    shards["shard3.h5"].write_bytes(shards["shard3.h5"].read_bytes()[:500])
    result = snakemake(workdir, GRID)
    output = result.stdout + result.stderr
    assert f"Damaged result file {SHARDS}/shard3.h5" in output
    jobs = sorted((rule, wc.get("shard")) for rule, wc in planned_jobs_from(output))
    assert jobs == [("merge", None), ("train_shard", "3")]
    assert_same_data(shards["shard3.h5"], originals / "shard3.h5")
    grid_after, _ = files.read_h5(workdir / GRID, statistics.STAT_FIELDS)
    assert all(grid_after[n].tobytes() == grid_before[n].tobytes() for n in statistics.STAT_FIELDS)
    assert len(list((workdir / SHARDS).glob("*.corrupt-*"))) == 3
    # Nothing left to repair, no further warning.
    again = snakemake(workdir, *shard_targets, "--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert "Damaged result" not in again.stdout + again.stderr


def assert_same_data(a, b):
    """Same datasets, bit for bit (provenance attributes may differ)."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert sorted(fa) == sorted(fb)
        for name in fa:
            x, y = fa[name][()], fb[name][()]
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name


def planned_jobs_from(text):
    """[(rule, wildcards)] of the jobs a Snakemake run printed."""
    jobs = []
    for line in text.splitlines():
        header = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if header:
            jobs.append((header.group(1), {}))
            continue
        wildcards = re.match(r"^\s+wildcards: (.*)$", line)
        if wildcards and jobs:
            jobs[-1][1].update(item.split("=", 1) for item in wildcards.group(1).split(", "))
    return jobs


@pytest.mark.slow
def test_an_injected_failure_is_reported_with_its_log_and_other_shards_are_kept(tmp_path, monkeypatch):
    workdir = prepare_workdir(tmp_path / "fail", one_experiment_config())
    monkeypatch.setenv("TRAINABILITY_TEST_FAIL_SHARDS", "tanh_small:0:2")
    result = snakemake(workdir, GRID, "--keep-going", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule train_shard" in output
    assert "logs/tanh_small/frame0/shards/shard2.log" in output
    assert "test fault injection: shard tanh_small:0:2 fails" in output  # the log, shown
    assert "test fault injection" in (workdir / "logs/tanh_small/frame0/shards/shard2.log").read_text()
    for shard in (0, 1, 3):
        n_pixels = 40 if shard < 3 else 24
        files.check_shard(workdir / SHARDS / f"shard{shard}.h5", statistics.STAT_FIELDS, n_pixels)
    assert not (workdir / SHARDS / "shard2.h5").exists()
    assert not (workdir / GRID).exists()
    # Without the injection only the failed shard (and the merge) remain to do.
    monkeypatch.delenv("TRAINABILITY_TEST_FAIL_SHARDS")
    assert sorted(r for r, _ in planned_jobs(workdir, GRID)) == ["merge", "train_shard"]


# ----------------------------------------------------------------- bad input (no cluster needed)

SLURM_VARS = (
    "TRAINABILITY_SLURM_ACCOUNT",
    "TRAINABILITY_SLURM_PARTITION",
    "TRAINABILITY_SLURM_GPU_PARTITION",
    "TRAINABILITY_SLURM_GPU_MODEL",
)


def run_with_slurm_profile(workdir, env, *args):
    cmd = snakemake_command(workdir, "--dry-run", *args, profile="slurm")
    full_env = {k: v for k, v in os.environ.items() if k not in SLURM_VARS}
    full_env.update(env)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)


@pytest.mark.slow
def test_unset_profile_variables_are_named_before_anything_runs(tmp_path):
    workdir = prepare_workdir(tmp_path / "vars", one_experiment_config())
    result = run_with_slurm_profile(
        workdir, {"TRAINABILITY_SLURM_PARTITION": "cpu", "TRAINABILITY_SLURM_GPU_PARTITION": "gpu"}
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "default-resources: slurm_account = $TRAINABILITY_SLURM_ACCOUNT" in output
    assert "set-resources train_shard: gpu_model = $TRAINABILITY_SLURM_GPU_MODEL" in output
    assert "PARTITION =" not in output  # the ones that are set are not blamed
    assert not (workdir / "results").exists() and not (workdir / ".snakemake/slurm_logs").exists()

    # All set (an empty GPU model means "any GPU"): the plan is made.
    ok = run_with_slurm_profile(
        workdir,
        {
            "TRAINABILITY_SLURM_ACCOUNT": "acct",
            "TRAINABILITY_SLURM_PARTITION": "cpu",
            "TRAINABILITY_SLURM_GPU_PARTITION": "gpu",
            "TRAINABILITY_SLURM_GPU_MODEL": "",
        },
    )
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "train_shard" in ok.stdout + ok.stderr


# ------------------------------------------------------------ trainability.ops.cluster (no cluster needed)


def test_unset_variables_are_found_in_default_and_rule_resources(monkeypatch):
    monkeypatch.setenv("SET_ONE", "acct")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    monkeypatch.delenv("UNSET_TWO", raising=False)
    res = lambda raw: SimpleNamespace(raw=raw)  # noqa: E731  (snakemake.resources.Resource)
    settings = SimpleNamespace(
        default_resources={
            "slurm_account": res("$SET_ONE"),
            "slurm_partition": res("$UNSET_ONE"),
            "mem_mb": res(4000),
            "tmpdir": res("system_tmpdir"),
        },
        overwrite_resources={"train_shard": {"gpu_model": res("${UNSET_TWO}"), "gpu": res(1)}},
    )
    found = cluster.unset_variables(settings)
    assert found == [
        ("default-resources", "slurm_partition", "UNSET_ONE"),
        ("set-resources train_shard", "gpu_model", "UNSET_TWO"),
    ]
    message = cluster.unset_variables_message(found)
    assert "export UNSET_ONE=... UNSET_TWO=..." in message
    assert cluster.unset_variables(None) == []


def test_sacct_states_are_normalised():
    assert cluster.normalise_states(
        {"1": "CANCELLED by 0", "2": "COMPLETED", "3": "CANCELLED+", "4": "RUNNING", "5": ""}
    ) == {"1": "CANCELLED", "2": "COMPLETED", "3": "CANCELLED", "4": "RUNNING", "5": ""}


def test_a_broken_sacct_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / "sacct"
    fake.write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    problem = cluster.sacct_problem()
    assert "accounting storage is disabled" in problem and "--slurm-status-command squeue" in problem
    fake.write_text("#!/bin/sh\nexit 0\n")
    assert cluster.sacct_problem() is None


def test_sbatch_rejections_get_a_hint(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "sbatch: error: Batch job submission failed: Requested node configuration is not available\n"
    )
    hints = cluster.submission_hints([log, tmp_path / "missing.log"])
    assert len(hints) == 1 and "more GPUs per job than a node has" in hints[0]
    assert cluster.submission_hints(str(log)) == hints
    assert cluster.submission_hints(None) == []


def test_a_bad_tuning_variable_stops_the_workflow_before_any_job(tmp_path, monkeypatch):
    """TRAINABILITY_TRITON_* choose the GPU kernel's variant in every training job: a bad one
    is one clear error at start-up, naming the variable and the allowed values."""
    workdir = prepare_workdir(tmp_path / "run", one_experiment_config())
    monkeypatch.setenv("TRAINABILITY_TRITON_PIXELS", "3")
    result = snakemake(workdir, "--dry-run", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "bad Triton knobs TRAINABILITY_TRITON_PIXELS=3; allowed: pixels a power of two <= 64" in text
    assert "Traceback" not in text and "train_shard" not in text
