"""Cluster requests of the per-frame jobs scale with the grid (trainability/ops/resources.py)."""

import re
import subprocess

import pytest

from trainability.ops import resources
from workflow_helpers import REPO, snakemake_command

# Peaks measured at 4096² (issue 9): merge 1.28 GB, score 1.56 GB, figures 1.47 GB.
MEASURED_4096 = {"merge": 1.28e9, "score": 1.56e9, "figures": 1.47e9}


@pytest.mark.parametrize("side", [1024, 4096, 8192])
def test_requests_cover_the_measured_peaks_with_room(side):
    pixels = side * side
    request = resources.frame_job_mem_mb(pixels) * 2**20
    for job, peak in MEASURED_4096.items():
        # Peaks scale with the pixels (the arrays dominate); keep at least 20% above them.
        assert request >= 1.2 * peak * pixels / 4096**2, (job, side)
    # and do not ask for far more than the work needs
    assert request <= 3 * max(MEASURED_4096.values()) * pixels / 4096**2 + 2**30


def test_requests_grow_with_the_grid_and_each_retry():
    small, large = resources.frame_job_mem_mb(1024**2), resources.frame_job_mem_mb(8192**2)
    assert large > 40 * (small - resources.BASE_MB)
    assert resources.frame_job_mem_mb(4096**2, attempt=2) == 2 * resources.frame_job_mem_mb(4096**2)
    assert resources.frame_job_runtime(4096**2, attempt=3) == 4 * resources.frame_job_runtime(4096**2)
    # The dimension job holds every frame's edge map: 42 frames of 4096² add 42 bytes per pixel.
    extra = resources.dimension_mem_mb(4096**2, 42) - resources.frame_job_mem_mb(4096**2)
    assert extra == pytest.approx(42 * 4096**2 / 2**20, abs=2)


@pytest.mark.slow
def test_the_plan_asks_for_them(tmp_path):
    for name in ("config", "resources"):
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    cmd = snakemake_command(tmp_path, "--dry-run", "results/deep_linear/frame0/scores.h5", configfile=False)
    cmd += ["--configfile", "config/figure1.yaml"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    expected = resources.frame_job_mem_mb(4096**2)
    for rule in ("merge", "score"):
        block = text[text.index(f"rule {rule}:") :]
        assert re.search(rf"mem_mb={expected}\b", block[: block.index("\n\n")]), block[:600]
