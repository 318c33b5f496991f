"""Snakemake adapter: pack one experiment into archives/<experiment>.tar.gz.

Contents: results/<experiment>/ and logs/<experiment>/ as they are, the
Snakemake report of the experiment, provenance.json and MANIFEST.sha256 (see
trainability.results.archive). Reads results and logs, never writes or removes them.
"""

import datetime
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from trainability.results import archive, integrity, provenance
from trainability.results import files as result_files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("archive")

params = snakemake.params  # the experiment's files, by the workflow's layout (rules/common.smk)
name = snakemake.wildcards.experiment
workdir = Path.cwd()
out_path = Path(snakemake.output[0])


def read_attrs(path):
    try:
        return result_files.read_h5(path, [])[1]
    except OSError as err:
        return {"error": str(err)}


def snakemake_report(tmpdir: Path) -> Path:
    """The Snakemake report of this experiment's outputs, made by a second Snakemake.

    `--report` cannot run inside a rule, so a second Snakemake reads the same
    workflow, config and metadata (--nolock: this run holds the lock; report
    generation only reads).
    """
    config_file = tmpdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(dict(snakemake.config), sort_keys=False))
    report = tmpdir / "report.html"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        params.snakefile,
        "--directory",
        str(workdir),
        "--configfile",
        str(config_file),
        "--nolock",
        "--report",
        str(report),
        *params.expected,
    ]
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    log.info("report: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    log.info("report output:\n%s", (done.stdout + done.stderr)[-4000:])
    if done.returncode != 0 or not report.is_file():
        raise RuntimeError(f"snakemake --report failed (exit {done.returncode}); see {snakemake.log[0]}")
    return report


missing = [p for p in params.expected if not Path(p).is_file()]
if missing:
    raise RuntimeError(
        f"experiment {name} is not finished, nothing archived; missing:\n    "
        + "\n    ".join(missing)
        + "\nRun the workflow first (snakemake --profile ...), then ask for the archive again."
    )

files = archive.collect_files(workdir, params.directories)
quarantined = sorted(p for p in files if integrity.is_quarantined(Path(p).name))
for p in quarantined:
    del files[p]  # damaged or stale files moved aside by the workflow: not results
log.info("%d files of %s (%d quarantined files left out)", len(files), name, len(quarantined))

record = provenance.provenance(
    name,
    {rel: path.stat().st_size for rel, path in files.items()},
    grids={frame: read_attrs(path) for frame, path in enumerate(params.grids)},
    shards={path: read_attrs(path) for path in params.shards if path in files},
    resolved=params.resolved,
    as_given=snakemake.config["experiments"][name],
    config_files=params.configfiles,
    versions=result_files.software_versions(),
    git=provenance.git_state(Path(params.snakefile).parent),
    slurm_by_output=provenance.slurm_job_ids(
        workdir / ".snakemake" / "log", tuple(f"{d}/" for d in params.directories)
    ),
    archived_on={"host": platform.node(), "workdir": str(workdir)},
    created_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    quarantined=quarantined,
)

out_path.parent.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{name}-report-") as tmp:
    report = snakemake_report(Path(tmp))
    members = dict(files)
    members[archive.REPORT] = report
    members[archive.PROVENANCE] = provenance.to_json_bytes(record)
    hashes = archive.write_archive(out_path, name, members)
log.info(
    "wrote %s: %d files + %s; check it with: trainability verify-archive %s",
    out_path,
    len(hashes),
    archive.MANIFEST,
    out_path,
)
