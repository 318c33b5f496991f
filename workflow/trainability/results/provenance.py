"""The provenance record of an archive: git state, SLURM job ids, config, versions, devices.

Pure functions of what the archive script has read (``workflow/scripts/archive.py``);
``provenance.json`` in every archive is :func:`provenance`'s dict.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from trainability.results.archive import REPORT


def git_state(directory: str | Path) -> dict:
    """Commit of the checkout holding the workflow, and whether it differs from it."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=60
        )

    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"commit": None, "error": str(err)}
    if head.returncode != 0:
        return {"commit": None, "error": head.stderr.strip() or "not a git checkout"}
    status = git("status", "--porcelain")
    lines = status.stdout.splitlines()
    changed = [line[3:] for line in lines if not line.startswith("??")]
    untracked = [line[3:] for line in lines if line.startswith("??")]
    return {
        "commit": head.stdout.strip(),
        # dirty: tracked files differ from the commit; untracked files are listed apart
        "dirty": bool(changed),
        "changed_files": changed,
        "untracked_files": untracked,
    }


_SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FIELD = re.compile(r"^\s+(output|jobid): (.*)$")


def slurm_job_ids(log_dir: str | Path, prefix: str | tuple[str, ...] = "") -> dict[str, list[str]]:
    """{output path: SLURM job ids} from Snakemake's run logs (``.snakemake/log``).

    Each run's log names the jobs it scheduled (rule, output, jobid) and the
    SLURM job id of every submission (retries are new submissions). For every
    output starting with ``prefix`` (or one of them) the ids from the most recent run that
    scheduled it are returned, oldest first (the last one made the file);
    an empty list means that run computed it without SLURM.
    """
    found: dict[str, list[str]] = {}
    for log in sorted(Path(log_dir).glob("*.snakemake.log")):
        outputs_of: dict[str, list[str]] = {}
        run: dict[str, list[str]] = {}
        pending_outputs: list[str] = []
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if _RULE.match(line):
                pending_outputs = []
                continue
            match = _FIELD.match(line)
            if match:
                key, value = match.groups()
                if key == "output":
                    pending_outputs = [p.strip() for p in value.split(",") if p.strip()]
                elif key == "jobid":
                    outputs_of[value.strip()] = pending_outputs
                    for out in pending_outputs:
                        if out.startswith(prefix):
                            run.setdefault(out, [])  # scheduled; [] if it ran locally
                continue
            match = _SUBMITTED.match(line)
            if match:
                jobid, slurm_id = match.groups()
                for out in outputs_of.get(jobid, []):
                    if out.startswith(prefix):
                        run.setdefault(out, []).append(slurm_id)
        found.update(run)  # later runs replace earlier ones, output by output
    return dict(sorted(found.items()))


def provenance(
    name: str,
    files: Mapping[str, int],
    grids: Mapping[int, Mapping],
    shards: Mapping[str, Mapping],
    *,
    resolved: Mapping,
    as_given: Mapping,
    config_files: Iterable[str],
    versions: Mapping,
    git: Mapping,
    slurm_by_output: Mapping[str, list[str]],
    archived_on: Mapping,
    created_utc: str,
    quarantined: Iterable[str] = (),
) -> dict:
    """The record ``provenance.json`` of an archive, from what the caller has read.

    ``files``: {archive path: size in bytes} of the archived results and logs;
    ``grids``: {frame: root attributes of its grid.h5}; ``shards``: {shard file:
    its attributes}, in the order to list them; ``versions``: at archiving;
    ``git``: :func:`git_state`; ``slurm_by_output``: :func:`slurm_job_ids`;
    ``archived_on``: host and working directory; ``quarantined``: damaged
    files moved aside by the workflow and left out.
    """
    frames = {f"frame{frame}": attrs for frame, attrs in sorted(grids.items())}
    by_device: dict[str, list[str]] = {}
    for path, attrs in shards.items():
        by_device.setdefault(json.dumps(attrs.get("device"), sort_keys=True), []).append(path)
    return {
        "experiment": name,
        "created_utc": created_utc,
        "archived_on": dict(archived_on),
        "git": dict(git),
        "config": {"resolved": resolved, "as_given": as_given, "config_files": list(config_files)},
        "versions": {
            "at_archiving": dict(versions),
            "frames": {f: a.get("versions") for f, a in frames.items()},
        },
        "devices": {
            "frames": {f: a.get("devices") for f, a in frames.items()},
            # Recorded by the merge: what computed each shard, also once the shards are removed.
            "shard_sources": {f: a.get("shard_sources") for f, a in frames.items()},
            "shards": [{"device": json.loads(k), "files": v} for k, v in by_device.items()],
        },
        "slurm_job_ids": {
            "note": "from Snakemake's run logs (.snakemake/log); empty list: computed without SLURM; "
            "absent: not known (e.g. the logs were removed)",
            "by_output": dict(slurm_by_output),
            "merge_jobs_by_frame": {f: a.get("slurm_job_ids") for f, a in frames.items()},
        },
        "windows_log10": {f: a.get("window_log10") for f, a in frames.items()},
        "quarantined_files_left_out": sorted(quarantined),
        "report": REPORT,
        "file_count": len(files),
        "total_bytes": sum(files.values()),
    }


def to_json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
