"""Snakemake adapter: pack one experiment into archives/<experiment>.tar.gz.

Contents: results/<experiment>/ and logs/<experiment>/ as they are, the
Snakemake report of the experiment, provenance.json and MANIFEST.sha256 (see
trainability.archive). Reads results and logs, never writes or removes them.
"""

import datetime
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from trainability import archive, io

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
log = logging.getLogger("archive")

name = snakemake.wildcards.experiment
workdir = Path.cwd()
out_path = Path(snakemake.output[0])


def read_attrs(path):
    try:
        return io.read_h5(path, [])[1]
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
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", snakemake.params.snakefile,
           "--directory", str(workdir), "--configfile", str(config_file),
           "--nolock", "--report", str(report), *snakemake.params.expected]
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    log.info("report: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    log.info("report output:\n%s", (done.stdout + done.stderr)[-4000:])
    if done.returncode != 0 or not report.is_file():
        raise RuntimeError(f"snakemake --report failed (exit {done.returncode}); see {snakemake.log[0]}")
    return report


missing = [p for p in snakemake.params.expected if not Path(p).is_file()]
if missing:
    raise RuntimeError(
        f"experiment {name} is not finished, nothing archived; missing:\n    " + "\n    ".join(missing)
        + "\nRun the workflow first (snakemake --profile ...), then ask for the archive again.")

files = archive.collect_files(workdir, [f"results/{name}", f"logs/{name}"])
quarantined = sorted(p for p in files if ".corrupt-" in Path(p).name)
for p in quarantined:
    del files[p]  # damaged shard files moved aside by the workflow: not results
log.info("%d files of %s (%d quarantined files left out)", len(files), name, len(quarantined))

frames = {}
for rel in sorted(files):
    parts = Path(rel).parts
    if len(parts) == 4 and parts[0] == "results" and parts[3] == "grid.h5":
        attrs = read_attrs(files[rel])
        frames[parts[2]] = {
            "devices": attrs.get("devices"),
            "versions": attrs.get("versions"),
            "merge_slurm_job_ids": attrs.get("slurm_job_ids"),
            "window_log10": attrs.get("window_log10"),
        }
shard_devices = {}
for rel in sorted(files):
    if "/shards/" in rel and rel.endswith(".h5") and rel.startswith("results/"):
        device = read_attrs(files[rel]).get("device")
        key = json.dumps(device, sort_keys=True)
        shard_devices.setdefault(key, []).append(rel)

provenance = {
    "experiment": name,
    "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "archived_on": {"host": platform.node(), "workdir": str(workdir)},
    "git": archive.git_state(Path(snakemake.params.snakefile).parent),
    "config": {
        "resolved": snakemake.params.resolved,
        "as_given": snakemake.config["experiments"][name],
        "config_files": snakemake.params.configfiles,
    },
    "versions": {"at_archiving": io.software_versions(), "frames": {f: v["versions"] for f, v in frames.items()}},
    "devices": {
        "frames": {f: v["devices"] for f, v in frames.items()},
        "shards": [{"device": json.loads(k), "files": v} for k, v in shard_devices.items()],
    },
    "slurm_job_ids": {
        "note": "from Snakemake's run logs (.snakemake/log); empty list: computed without SLURM; "
                "absent: not known (e.g. the logs were removed)",
        "by_output": archive.slurm_job_ids(workdir / ".snakemake" / "log", f"results/{name}/"),
        "merge_jobs_by_frame": {f: v["merge_slurm_job_ids"] for f, v in frames.items()},
    },
    "windows_log10": {f: v["window_log10"] for f, v in frames.items()},
    "quarantined_files_left_out": quarantined,
    "report": archive.REPORT,
    "file_count": len(files),
    "total_bytes": sum(p.stat().st_size for p in files.values()),
}

out_path.parent.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{name}-report-") as tmp:
    report = snakemake_report(Path(tmp))
    members = dict(files)
    members[archive.REPORT] = report
    members[archive.PROVENANCE] = archive.to_json_bytes(provenance)
    hashes = archive.write_archive(out_path, name, members)
log.info("wrote %s: %d files + %s; check it with: trainability verify-archive %s",
         out_path, len(hashes), archive.MANIFEST, out_path)
