"""Only a run that holds Snakemake's lock moves, renames or rewrites a result (real Snakemake runs).

Every command reads the Snakefile, and the integrity check of the results used to move
files aside while it was read: after a config edit, --summary, --unlock, --lint,
--list-rules and --list-changes moved every finished grid.h5 aside, and a second
snakemake started while a run went on moved that run's files aside before it stopped
with a LockException (the first run then died of missing files).
"""

import os
import subprocess
import time

import pytest
import yaml

from workflow_helpers import TINY_CONFIG, planned_jobs, prepare_workdir, snakemake, snakemake_command

pytestmark = pytest.mark.slow

GRID = "results/tanh_small/frame0/grid.h5"
INSPECTIONS = [
    ["--dry-run"],
    ["--summary"],
    ["--detailed-summary"],
    ["--list-changes", "params"],
    ["--list-changes", "input"],
    ["--unlock"],
    ["--lint"],
    ["--list-rules"],
]


def tiny(**training):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"] = {"tanh_small": config["experiments"]["tanh_small"]}
    config["experiments"]["tanh_small"]["training"].update(training)
    return config


def snapshot(workdir):
    """{path: (inode, size, mtime)} of every file under results/."""
    return {
        str(p.relative_to(workdir)): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file()
    }


def test_inspection_commands_never_touch_results(tmp_path):
    workdir = prepare_workdir(tmp_path / "run", tiny())
    snakemake(workdir)
    before = snapshot(workdir)
    assert GRID in before
    edited = workdir / "edited.yaml"
    edited.write_text(yaml.safe_dump(tiny(steps=31)))

    for args in INSPECTIONS:
        cmd = snakemake_command(workdir, "--cores", "2", *args, configfile=False)
        result = subprocess.run([*cmd, "--configfile", str(edited)], capture_output=True, text=True)
        output = result.stdout + result.stderr
        assert snapshot(workdir) == before, f"{args} changed results/:\n{output[-3000:]}"
        if args in (["--dry-run"], ["--summary"]):  # commands that plan also say what a run does
            assert f"Stale result file {GRID}" in output and "moves nothing" in output, output[-3000:]

    # Back to the config the results were made with: nothing to do, nothing lost; the order
    # of its keys does not matter either (params used to compare as reprs of ordered dicts).
    assert planned_jobs(workdir) == []
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny(), sort_keys=True))
    assert planned_jobs(workdir) == []


def test_a_run_that_cannot_take_the_lock_changes_nothing(tmp_path):
    """A run goes on (a slow shard of a new experiment); a second snakemake with an edited
    config sees stale results, cannot take the lock, and stops having changed nothing; the
    first run finishes."""
    config = tiny()
    workdir = prepare_workdir(tmp_path / "run", config)
    snakemake(workdir)
    config["experiments"]["tanh_slow"] = dict(config["experiments"]["tanh_small"], title="slow")
    (workdir / "with_slow.yaml").write_text(yaml.safe_dump(config))
    (workdir / "edited.yaml").write_text(yaml.safe_dump(tiny(steps=31)))

    first_cmd = snakemake_command(workdir, "--cores", "2", configfile=False)
    first_cmd += ["--configfile", str(workdir / "with_slow.yaml")]
    env = dict(os.environ, TRAINABILITY_TEST_SLOW_SHARDS="tanh_slow:0:0=25")
    first = subprocess.Popen(first_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        locks = workdir / ".snakemake" / "locks"
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(locks.iterdir())):
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.5)
        before = snapshot(workdir)

        second_cmd = snakemake_command(workdir, "--cores", "2", configfile=False)
        second = subprocess.run(
            [*second_cmd, "--configfile", str(workdir / "edited.yaml")], capture_output=True, text=True
        )
        output = second.stdout + second.stderr
        assert second.returncode != 0 and "lock" in output.lower(), output[-3000:]
        assert f"Stale result file {GRID}" in output
        now = snapshot(workdir)
        assert {path: now.get(path) for path in before} == before, "a finished file was touched"
        assert not list((workdir / "results").rglob("*.stale-*"))
    finally:
        out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    assert (workdir / "results/tanh_slow/frame0/grid.h5").exists()
    assert snapshot(workdir)[GRID] == before[GRID], "the finished grid was never touched"
