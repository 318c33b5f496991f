"""Snakemake's own linter passes on the workflow (log: everywhere, no absolute paths, ...)."""

import subprocess
import sys

from workflow_helpers import REPO


def test_snakemake_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--cores", "1"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr
