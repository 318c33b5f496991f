"""The workflow on a real SLURM cluster, through profiles/slurm: results, faults, bad input.

Needs the single-node test cluster of tests/slurm/ (`tests/slurm/start-cluster.sh`,
its defaults: account trainability, partitions debug and gpu, 2 GPUs of type
a100); skipped, with the reason, when it does not answer
(TRAINABILITY_REQUIRE_SLURM=1, as in CI, makes that an error). It refuses to
run against any other cluster (ClusterName must be localcluster, or
TRAINABILITY_TEST_SLURM_CLUSTER).

Snakemake runs exactly as a user starts it (`snakemake --profile profiles/slurm`);
test-only settings go on the command line, never into the profile: status
polls every 2 s instead of after 40 s, `--latency-wait 5` (no network
filesystem here). Every run is bounded: `timeout -s INT` (SIGINT makes
Snakemake scancel its jobs; SIGTERM would not stop it) and a hard kill after
that, and every SLURM job a test started is scancelled at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import h5py
import pytest
import yaml

from trainability.results import archive
from workflow_helpers import prepare_workdir, snakemake_command

CLUSTER = os.environ.get("TRAINABILITY_TEST_SLURM_CLUSTER", "localcluster")
SLURM_ENV = {  # the test cluster's names (start-cluster.sh defaults)
    "TRAINABILITY_SLURM_ACCOUNT": "trainability",
    "TRAINABILITY_SLURM_PARTITION": "debug",
    "TRAINABILITY_SLURM_GPU_PARTITION": "gpu",
    "TRAINABILITY_SLURM_GPU_MODEL": "a100",
}
FAST = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
    "--latency-wait",
    "5",
]
# Attributes that say where and with what a file was made, not what it holds.
PROVENANCE_ATTRS = {"device", "devices", "versions", "slurm_job_ids"}


def _cluster_problem() -> str | None:
    checks = (
        ["sinfo", "-h"],
        ["sacct", "-n", "-X", "--starttime", "now-1minutes"],
        ["scontrol", "show", "config"],
    )
    outputs = []
    for cmd in checks:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except FileNotFoundError:
            return f"no SLURM here ({cmd[0]} not found); start one with tests/slurm/start-cluster.sh"
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` did not answer within 10 s"
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[:200]}"
        outputs.append(done.stdout)
    name = re.search(r"^ClusterName\s*=\s*(\S+)", outputs[2], re.M)
    if not name or name.group(1) != CLUSTER:
        return (
            f"the cluster answering is {name.group(1) if name else '?'!r}, not the test cluster "
            f"{CLUSTER!r}: not submitting test jobs to it"
        )
    return None


_PROBLEM = _cluster_problem()
if _PROBLEM and os.environ.get("TRAINABILITY_REQUIRE_SLURM") == "1":  # CI: fail, do not skip
    pytest.fail(f"TRAINABILITY_REQUIRE_SLURM=1 but no SLURM test cluster: {_PROBLEM}", pytrace=False)
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(_PROBLEM is not None, reason=f"no SLURM test cluster: {_PROBLEM}"),
]

_RUN_IDS: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _cancel_leftover_jobs():
    """Whatever happens in a test: no job of ours stays on the cluster."""
    yield
    for run_id in _RUN_IDS:
        subprocess.run(["scancel", "--name", run_id], capture_output=True, timeout=30)


def slurm_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINABILITY_TEST_")}
    env.update(SLURM_ENV)
    env.update(extra or {})
    return env


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return snakemake_command(workdir, *FAST, *args, profile="slurm")


class Run:
    def __init__(self, returncode, output, wall):
        self.returncode, self.output, self.wall = returncode, output, wall
        match = re.search(r"SLURM run ID: (\S+)", output)
        self.run_id = match.group(1) if match else None
        if self.run_id:
            _RUN_IDS.append(self.run_id)

    def __str__(self):
        return f"exit {self.returncode} after {self.wall:.0f} s; output:\n{self.output[-8000:]}"


def sigint_as_in_a_terminal():
    """For a child that the test stops with SIGINT, as Ctrl-C would: a pytest started in the
    background by a script (`pytest &`) hands SIGINT on ignored, and Snakemake would not stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_slurm(workdir: Path, *args: str, limit: int = 420, env=None) -> Run:
    """snakemake --profile profiles/slurm ..., stopped with SIGINT after `limit` seconds."""
    cmd = ["timeout", "-s", "INT", "-k", "60", str(limit), *snakemake_cmd(workdir, *args)]
    began = time.monotonic()
    done = subprocess.run(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=slurm_env(env),
        timeout=limit + 120,
        preexec_fn=sigint_as_in_a_terminal,
    )
    run = Run(done.returncode, done.stdout, time.monotonic() - began)
    (workdir / f"snakemake-{len(list(workdir.glob('snakemake-*.out')))}.out").write_text(done.stdout)
    return run


def sacct_jobs(run_id: str) -> list[dict]:
    """The SLURM jobs of one Snakemake run (job name = run id), oldest first."""
    fields = ["JobID", "State", "Partition", "Account", "ReqTRES", "AllocTRES", "Comment"]
    done = subprocess.run(
        [
            "sacct",
            "-X",
            "-P",
            "-n",
            "--name",
            run_id,
            "--starttime",
            "now-1days",
            "--format",
            ",".join(fields),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = [dict(zip(fields, line.split("|"))) for line in done.stdout.splitlines() if line.strip()]
    for row in rows:  # Snakemake's comment: rule_<rule>_wildcards_<values joined by _>
        match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_(.*))?", row["Comment"])
        row["rule"], row["wildcards"] = (match.group(1), match.group(2)) if match else (None, None)
        row["State"] = row["State"].split()[0]  # "CANCELLED by 0" -> "CANCELLED"
    return sorted(rows, key=lambda r: int(r["JobID"].split("_")[0]))


def squeue(run_id: str) -> list[tuple[str, str, str]]:
    done = subprocess.run(
        ["squeue", "-h", "--name", run_id, "-o", "%i|%T|%k"], capture_output=True, text=True, timeout=60
    )
    return [tuple(line.split("|", 2)) for line in done.stdout.splitlines() if line.strip()]


def wait_for(what: str, condition, timeout: float, proc=None, interval=1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"Snakemake exited ({proc.returncode}) while waiting for {what}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def shard_targets(name, n):
    return [f"results/{name}/frame0/shards/shard{i}.h5" for i in range(n)]


def same_data(a: Path, b: Path) -> list[str]:
    """Differences between two HDF5 files, ignoring provenance attributes; [] when equal."""
    problems = []
    with h5py.File(a) as fa, h5py.File(b) as fb:
        if sorted(fa) != sorted(fb):
            return [f"{a}: datasets {sorted(fa)} vs {sorted(fb)}"]
        for name in fa:
            x, y = fa[name][()], fb[name][()]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                problems.append(f"{a}: dataset {name} differs")
        attrs_a = {k: v for k, v in fa.attrs.items() if k not in PROVENANCE_ATTRS}
        attrs_b = {k: v for k, v in fb.attrs.items() if k not in PROVENANCE_ATTRS}
        if sorted(attrs_a) != sorted(attrs_b) or any(str(attrs_a[k]) != str(attrs_b[k]) for k in attrs_a):
            problems.append(f"{a}: attributes differ")
    return problems


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The tiny config through profiles/slurm, undisturbed, and with profiles/local as the
    reference (run at the same time: the SLURM run mostly waits)."""
    local = prepare_workdir(tmp_path_factory.mktemp("local"))
    workdir = prepare_workdir(tmp_path_factory.mktemp("slurm"))
    cmd = snakemake_command(local, "--cores", "2")
    with open(local / "snakemake.out", "w") as out:
        local_proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=slurm_env(), start_new_session=True
        )
    try:
        run = run_slurm(workdir, limit=600)
        local_proc.wait(timeout=600)
    finally:
        if local_proc.poll() is None:
            os.killpg(local_proc.pid, signal.SIGKILL)
            local_proc.wait()
    print(f"\nSLURM run of the tiny config: {run.wall:.0f} s wall")
    assert local_proc.returncode == 0, (local / "snakemake.out").read_text()[-6000:]
    assert run.returncode == 0, str(run)
    return workdir, run, local


# ----------------------------------------------------------------------------- the real run


def test_every_shard_ran_as_its_own_slurm_job_with_a_gpu(runs):
    workdir, run, _ = runs
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    expected = set()
    for name, exp in config["experiments"].items():
        res, size = exp["grid"]["resolution"], exp["grid"]["shard_size"]
        for frame in range(exp.get("zoom", {}).get("frames", 1)):
            expected |= {f"{name}_{frame}_{s}" for s in range(-(-res * res // size))}
    jobs = sacct_jobs(run.run_id)
    shards = [j for j in jobs if j["rule"] == "train_shard"]
    assert sorted(j["wildcards"] for j in shards) == sorted(expected), "one SLURM job per shard"
    assert len({j["JobID"] for j in shards}) == len(expected)
    for job in shards:
        assert job["State"] == "COMPLETED", job
        assert job["Partition"] == "gpu" and job["Account"] == "trainability", job
        for tres in ("ReqTRES", "AllocTRES"):
            assert "gres/gpu=1" in job[tres] and "gres/gpu:a100=1" in job[tres], job
    others = [j for j in jobs if j["rule"] != "train_shard"]
    # offset_minibatch is a 2-frame sequence: its pictures, strip, depth figure and video too.
    assert {j["rule"] for j in others} == {
        "merge",
        "score",
        "dimension",
        "figures",
        "frame_images",
        "zoom_strip",
        "dimension_depth",
        "video",
    }
    for job in others:
        assert job["State"] == "COMPLETED" and job["Partition"] == "debug", job
        assert "gres/gpu" not in job["ReqTRES"], job
    # The merged grid records its SLURM job.
    with h5py.File(workdir / "results/tanh_small/frame0/grid.h5") as h5:
        merge_ids = json.loads(h5.attrs["slurm_job_ids"])
    assert merge_ids and merge_ids[0] in {j["JobID"] for j in others if j["rule"] == "merge"}


def test_slurm_results_equal_the_local_run_bit_for_bit(runs):
    workdir, _, local_run = runs
    ours = sorted(p.relative_to(workdir) for p in (workdir / "results").rglob("*.h5"))
    theirs = sorted(p.relative_to(local_run) for p in (local_run / "results").rglob("*.h5"))
    # grid.h5 and scores.h5 of 4 frames: the shards are temporary (removed once merged).
    assert ours == theirs and len(ours) == 4 * 2
    problems = [p for rel in ours for p in same_data(workdir / rel, local_run / rel)]
    assert not problems, "\n".join(problems)
    for rel in list((workdir / "results").rglob("dimension.json")):
        rel = rel.relative_to(workdir)
        assert json.loads((workdir / rel).read_text()) == json.loads((local_run / rel).read_text()), rel
    for rel in ("results/summary/dimension_table.csv", "results/summary/dimension_table.md"):
        assert (workdir / rel).read_bytes() == (local_run / rel).read_bytes(), rel


def test_archive_of_a_slurm_run_names_its_jobs(runs):
    workdir, run, _ = runs
    archived = run_slurm(workdir, "archives/tanh_small.tar.gz", limit=240)
    assert archived.returncode == 0, str(archived)
    assert "has been submitted with SLURM jobid" not in archived.output, "a local rule"
    assert archive.verify(workdir / "archives/tanh_small.tar.gz").ok
    with tarfile.open(workdir / "archives/tanh_small.tar.gz") as tar:
        provenance = json.loads(tar.extractfile("tanh_small/provenance.json").read())
    by_output = provenance["slurm_job_ids"]["by_output"]
    jobs = {(j["rule"], j["wildcards"]): j["JobID"] for j in sacct_jobs(run.run_id)}
    for shard in range(4):
        assert by_output[f"results/tanh_small/frame0/shards/shard{shard}.h5"] == [
            jobs["train_shard", f"tanh_small_0_{shard}"]
        ]
    assert by_output["results/tanh_small/frame0/grid.h5"] == [jobs["merge", "tanh_small_0"]]
    assert provenance["slurm_job_ids"]["merge_jobs_by_frame"]["frame0"] == [jobs["merge", "tanh_small_0"]]


# ----------------------------------------------------------------------------- faults


def test_scancel_is_retried_and_an_interrupted_run_resumes_without_recomputing(runs, tmp_path):
    """(a) scancel of a running shard job, (d) SIGINT mid-run, then the run started again."""
    name, target = "tanh_resharded", "results/tanh_resharded/frame0/grid.h5"
    workdir = prepare_workdir(tmp_path / "faults")
    log = workdir / f"logs/{name}/frame0/shards/shard2.log"
    out_path = workdir / "interrupted.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            snakemake_cmd(workdir, target),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=slurm_env({"TRAINABILITY_TEST_SLOW_SHARDS": f"{name}:0:2=600"}),
            start_new_session=True,
            preexec_fn=sigint_as_in_a_terminal,
        )
    try:
        run_id = wait_for(
            "the SLURM run id",
            lambda: (m := re.search(r"SLURM run ID: (\S+)", out_path.read_text())) and m.group(1),
            120,
            proc,
        )
        _RUN_IDS.append(run_id)

        def shard2_sleeping(exclude=(), old_log=None):
            """Its SLURM job id once shard 2 runs and sleeps (each attempt rewrites its log)."""
            text = log.read_text() if log.exists() else ""
            if "test fault injection: sleeping" not in text or text == old_log:
                return None
            for job_id, state, comment in squeue(run_id):
                if comment.endswith(f"{name}_0_2") and state == "RUNNING" and job_id not in exclude:
                    return job_id
            return None

        first = wait_for("shard 2 running", shard2_sleeping, 240, proc)
        first_log = log.read_text()
        # (a) cancel it while it runs: the profile's retries resubmit it.
        subprocess.run(["scancel", first], check=True, timeout=30)
        second = wait_for(
            "shard 2 resubmitted and running",
            lambda: shard2_sleeping(exclude=(first,), old_log=first_log),
            240,
            proc,
        )
        wait_for(
            "shards 0 and 1 finished and recorded",
            lambda: (
                all((workdir / t).exists() for t in shard_targets(name, 2))
                and "2 of 4 steps (50%) done" in out_path.read_text()
            ),
            240,
            proc,
        )
        # (d) interrupt Snakemake (Ctrl-C) while shard 2 still runs, once it has recorded
        # shards 0 and 1 as done (its progress line): the rerun below must find them finished.
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = out_path.read_text()
    assert proc.returncode != 0, output[-5000:]
    assert f"SLURM-job '{first}' failed, SLURM status is: 'CANCELLED'" in output, output[-5000:]
    wait_for("no job of the interrupted run left", lambda: not squeue(run_id), 60)
    jobs = {j["JobID"]: j for j in sacct_jobs(run_id)}
    assert jobs[first]["State"] == "CANCELLED" and jobs[second]["State"] == "CANCELLED"
    assert [j["wildcards"] for j in jobs.values() if j["rule"] == "train_shard"].count(f"{name}_0_2") == 2
    assert not (workdir / target).exists()

    finished = shard_targets(name, 2)
    assert all((workdir / t).is_file() for t in finished), "kept: their frame is not merged"
    # Started again, as a user would: only the unfinished shard and the merge run.
    rerun = run_slurm(workdir, target, limit=300)
    assert rerun.returncode == 0, str(rerun)
    rerun_jobs = sacct_jobs(rerun.run_id)
    assert sorted((j["rule"], j["wildcards"]) for j in rerun_jobs) == [
        ("merge", f"{name}_0"),
        ("train_shard", f"{name}_0_2"),
    ]
    # Not recomputed (the job list above); removed once merged, as temporary files.
    assert not any((workdir / t).exists() for t in finished)
    problems = same_data(workdir / target, runs[2] / target)
    assert not problems, "\n".join(problems)


def test_a_failing_shard_is_reported_with_its_logs_and_the_others_are_kept(tmp_path):
    """(b) One shard job fails; --retries 0 (test-only: a retry would fail the same way)."""
    name, target = "tanh_resharded", "results/tanh_resharded/frame0/grid.h5"
    workdir = prepare_workdir(tmp_path / "fail")
    run = run_slurm(
        workdir, target, "--retries", "0", limit=300, env={"TRAINABILITY_TEST_FAIL_SHARDS": f"{name}:0:1"}
    )
    assert run.returncode != 0, str(run)
    assert "Error in rule train_shard" in run.output, str(run)
    assert f"logs/{name}/frame0/shards/shard1.log" in run.output, str(run)
    assert f"test fault injection: shard {name}:0:1 fails" in run.output, "the log is shown"
    failed = [j for j in sacct_jobs(run.run_id) if j["State"] != "COMPLETED"]
    assert [(j["wildcards"], j["State"]) for j in failed] == [(f"{name}_0_1", "FAILED")]
    slurm_log = workdir / f"logs/slurm/rule_train_shard/{name}_0_1/{failed[0]['JobID']}.log"
    assert slurm_log.is_file() and str(slurm_log) in run.output, str(run)
    for shard in (0, 2):
        assert (workdir / f"results/{name}/frame0/shards/shard{shard}.h5").is_file()
    assert not (workdir / f"results/{name}/frame0/shards/shard1.h5").exists()
    assert not (workdir / target).exists()


# ----------------------------------------------------------------------------- bad input


def test_more_gpus_than_a_node_has_is_rejected_at_submission(tmp_path):
    gres = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True, timeout=30).stdout
    too_many = 1 + max((int(n) for n in re.findall(r"gpu:(?:\w+:)?(\d+)", gres)), default=0)
    workdir = prepare_workdir(tmp_path / "gpus")
    # A CLI --set-resources replaces the profile's block: repeat partition and model.
    run = run_slurm(
        workdir,
        "results/tanh_small/frame0/shards/shard0.h5",
        "--set-resources",
        f"train_shard:gpu={too_many}",
        "train_shard:slurm_partition=gpu",
        "train_shard:gpu_model=a100",
        limit=180,
    )
    assert run.returncode != 0, str(run)
    assert "Requested node configuration is not available" in run.output, str(run)
    assert f"--gpus=a100:{too_many}" in run.output, str(run)
    assert "no node of its partition has what the job asks for" in run.output, str(run)
    assert "has been submitted with SLURM jobid" not in run.output
    assert run.wall < 150, f"took {run.wall:.0f} s"


def test_a_cluster_without_accounting(tmp_path):
    """sacct fails as on a cluster without slurmdbd: refused up front; squeue polling works."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sacct").write_text(
        "#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n"
    )
    (fake / "sacct").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    workdir = prepare_workdir(tmp_path / "noacct")
    target = "results/tanh_small/frame0/shards/shard0.h5"
    refused = run_slurm(workdir, target, limit=120, env=env)
    assert refused.returncode != 0, str(refused)
    assert "sacct does not work on this cluster" in refused.output, str(refused)
    assert "accounting storage is disabled" in refused.output
    assert "--slurm-status-command squeue" in refused.output
    assert "has been submitted with SLURM jobid" not in refused.output
    assert refused.wall < 90, f"took {refused.wall:.0f} s"

    works = run_slurm(workdir, target, "--slurm-status-command", "squeue", limit=240, env=env)
    assert works.returncode == 0, str(works)
    assert (workdir / target).is_file()
