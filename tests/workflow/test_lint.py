"""Linters and formatters pass on the tree: Snakemake's own linter (log: everywhere, no
absolute paths, ...), ruff (lint and format, settings in pyproject.toml) and snakefmt
(the Snakefile and rule files). `make format` fixes what they can."""

import subprocess
import sys
from pathlib import Path

import pytest

from workflow_helpers import REPO

BIN = Path(sys.executable).parent
SNAKEMAKE_FILES = ["Snakefile", "workflow/rules", "tests/slurm/toy/Snakefile"]


def run(*cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_is_clean():
    result = run(sys.executable, "-m", "snakemake", "--lint", "--cores", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff_is_clean(args):
    result = run(str(BIN / "ruff"), *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = run(str(BIN / "snakefmt"), "--check", *SNAKEMAKE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
