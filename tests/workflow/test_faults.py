"""Faults without a cluster: damaged shard files, injected failures, unset profile variables.

The SLURM versions (scancel, interrupts, sbatch rejections) are in test_slurm.py.
"""

import os
import subprocess

import h5py
import pytest
import yaml

from trainability.contract import statistics
from trainability.results import files
from workflow_helpers import TINY_CONFIG, jobs_in, planned_jobs, prepare_workdir, snakemake, snakemake_command

SHARDS = "results/tanh_small/frame0/shards"
GRID = "results/tanh_small/frame0/grid.h5"


def one_experiment_config(name="tanh_small"):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {name: config["experiments"][name]}
    return config


# ----------------------------------------------------------------- integrity unit tests


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
    jobs = sorted((rule, wc.get("shard")) for rule, wc in jobs_in(output))
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
    jobs = sorted((rule, wc.get("shard")) for rule, wc in jobs_in(output))
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
