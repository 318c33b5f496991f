"""Checks and fixes for running the workflow on a SLURM cluster (used by workflow/rules/common.smk).

- :func:`unset_variables`: profile resources still naming an unset ``$VARIABLE``
  (Snakemake leaves "$TRAINABILITY_SLURM_ACCOUNT" in place when it is unset,
  and sbatch would get it as the account).
- :func:`sacct_problem`: whether ``sacct`` works; on a cluster without job
  accounting it fails on every status poll and the SLURM plugin waits forever.
- :func:`patch_slurm_status_query`: the plugin reads sacct's "CANCELLED by <uid>"
  (a job cancelled with scancel) as "still running"; normalise states.
- :func:`submission_hints`: what to check for sbatch's rejections.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess

if importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None:
    import snakemake_executor_plugin_slurm as slurm_plugin
else:  # a plain local installation: nothing to patch
    slurm_plugin = None


def unset_variables(resource_settings) -> list[tuple[str, str, str]]:
    """[(where, resource, variable)] for resource values that still name an unset $VARIABLE."""
    blocks = []
    if resource_settings is not None:
        blocks.append(("default-resources", resource_settings.default_resources or {}))
        for rule, resources in (resource_settings.overwrite_resources or {}).items():
            blocks.append((f"set-resources {rule}", resources))
    found = []
    for where, resources in blocks:
        for name, value in resources.items():
            raw = getattr(value, "raw", value)  # snakemake.resources.Resource keeps the text
            if isinstance(raw, str):
                for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", os.path.expandvars(raw)):
                    found.append((where, name, var))
    return found


def unset_variables_message(found) -> str:
    return (
        "unset environment variable(s) in the resources of the profile:\n"
        + "\n".join(f"    {where}: {name} = ${var}" for where, name, var in found)
        + "\nexport "
        + " ".join(sorted({f"{var}=..." for _, _, var in found}))
        + " (see profiles/slurm/config.yaml) before starting Snakemake."
    )


def sacct_problem(timeout: float = 60) -> str | None:
    """Why sacct cannot report job states here, or None (also None when it is slow or absent)."""
    try:
        probe = subprocess.run(
            ["sacct", "--noheader", "-X", "--starttime", "now-1minutes", "--format", "JobID"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode == 0:
        return None
    said = (probe.stderr or probe.stdout).strip() or f"exit status {probe.returncode}"
    return (
        "sacct does not work on this cluster, so Snakemake could not tell when jobs finish "
        f"(sacct said: {said}). On a cluster without job accounting add "
        "--slurm-status-command squeue (needs MinJobAge >= 120 in slurm.conf; see README, "
        "Running on a cluster)."
    )


def normalise_states(status_of_jobs: dict[str, str]) -> dict[str, str]:
    """'CANCELLED by 0' -> 'CANCELLED' (sacct), 'CANCELLED+' -> 'CANCELLED'; others unchanged."""
    return {
        job: state.split()[0].rstrip("+") if state.strip() else state for job, state in status_of_jobs.items()
    }


def patch_slurm_status_query() -> bool:
    """Make snakemake-executor-plugin-slurm see jobs cancelled with scancel as failed.

    The plugin (2.8.0, and its main branch as of 2026-07) compares sacct's state
    with a list of failure states; "CANCELLED by <uid>" is not in it, so such a
    job stays "running" and Snakemake waits forever. Wraps the plugin's status
    query to normalise the states. Returns whether the plugin was patched;
    does nothing if the plugin's structure changed.
    """
    query = getattr(slurm_plugin, "query_job_status", None)  # None also without the plugin
    if query is None or getattr(query, "_trainability_fix", False):
        return False

    async def query_job_status(command, logger):
        status_of_jobs, duration = await query(command, logger)
        if status_of_jobs:
            status_of_jobs = normalise_states(status_of_jobs)
        return status_of_jobs, duration

    query_job_status._trainability_fix = True
    slurm_plugin.query_job_status = query_job_status
    return True


SUBMISSION_HINTS = {
    "Requested node configuration is not available": (
        "SLURM refused a job at submission: no node of its partition has what the job asks "
        "for. Compare the job's resources above (gpu, gpu_model, threads, mem_mb) with "
        "`sinfo -o '%P %D %c %m %G'`: typically more GPUs per job than a node has, or a GPU "
        "model (TRAINABILITY_SLURM_GPU_MODEL) that partition does not have."
    ),
    "Invalid account or account/partition combination": (
        "SLURM refused a job at submission: check TRAINABILITY_SLURM_ACCOUNT and the "
        "partitions (`sacctmgr show assoc user=$USER format=account,partition`)."
    ),
}


def submission_hints(log_files) -> list[str]:
    """Hints for the sbatch rejections found in Snakemake's log file(s)."""
    if isinstance(log_files, (str, os.PathLike)):
        log_files = [log_files]
    text = ""
    for path in log_files or []:
        try:
            with open(path, errors="replace") as fh:
                text += fh.read()
        except OSError:
            pass
    return [hint for needle, hint in SUBMISSION_HINTS.items() if needle in text]
