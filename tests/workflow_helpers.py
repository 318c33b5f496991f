"""Running the real workflow in a scratch directory, and reading its plans."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"


def write_init_file(path: Path, width=4, depth=3, n=6, seed=11):
    rng = np.random.default_rng(seed)
    arrays = {f"W{i}": rng.standard_normal((width, width)) for i in range(depth - 1)}
    arrays[f"W{depth - 1}"] = rng.standard_normal((width, 1))
    arrays["X"] = rng.standard_normal((n, width))
    arrays["Y"] = rng.standard_normal((n, 1))
    np.savez(path, **arrays)


def prepare_workdir(workdir: Path, config: dict | None = None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    write_init_file(workdir / "init_w4.npz")
    if config is None:
        config = yaml.safe_load(TINY_CONFIG.read_text())
    write_config(workdir, config)
    return workdir


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def snakemake_command(workdir: Path, *args: str, profile: str | None = "local", configfile: bool = True):
    """The command line of the workflow as a user runs it, in ``workdir``: with its config.yaml
    (``configfile``) and ``profiles/<profile>`` (None: no profile), then ``args``."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    cmd += ["--directory", str(workdir)]
    if configfile:
        cmd += ["--configfile", str(workdir / "config.yaml")]
    if profile is not None:
        cmd += ["--profile", str(REPO / "profiles" / profile)]
    return [*cmd, *args]


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 600, profile="local"):
    """Run the workflow as a user would (CLI), in ``workdir`` with its config.yaml."""
    cmd = snakemake_command(workdir, "--cores", "2", *args, profile=profile)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")


def jobs_in(text: str) -> list[tuple[str, dict]]:
    """[(rule, wildcards)] of the jobs a Snakemake run or dry run printed."""
    jobs = []
    for line in text.splitlines():
        header = JOB_HEADER.match(line.strip())
        if header:
            jobs.append((header.group(1), {}))
            continue
        wildcards = WILDCARDS.match(line)
        if wildcards and jobs:
            for item in wildcards.group(1).split(", "):
                key, _, value = item.partition("=")
                jobs[-1][1][key] = value
    return jobs


def planned_jobs(workdir: Path, *args: str) -> list[tuple[str, dict]]:
    """The jobs a dry run would execute: [(rule, wildcards)], from Snakemake's own plan."""
    result = snakemake(workdir, "--dry-run", *args)
    text = result.stdout + result.stderr
    jobs = jobs_in(text)
    if not jobs and "Nothing to be done" not in text:
        raise AssertionError(f"could not read a plan from:\n{text[-4000:]}")
    return jobs
