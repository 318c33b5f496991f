"""SLURM checks that need no cluster (trainability.ops.cluster): unset profile variables, sacct
states, a broken sacct, sbatch rejections."""

import os
from types import SimpleNamespace

from trainability.ops import cluster


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
