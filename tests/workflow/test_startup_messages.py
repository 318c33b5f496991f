"""What a user sees when the workflow refuses to start: one message naming the field, file or
variable and what is allowed, no Snakemake location line, no traceback, and no job run.

Real Snakemake runs (``snakemake -n`` mostly) in a scratch directory, as a user types them.
"""

import json
import time

import pytest

from workflow_helpers import prepare_workdir, snakemake

SMALL = {
    "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
    "data": {"size": "params", "seed": 0},
    "training": {"steps": 20},
    "phase_space": {"kind": "lr_vs_lr", "x": [-0.5, 1.5], "y": [-0.5, 1.5]},
    "grid": {"resolution": 12, "shard_size": 144},
}


def experiment(**grid):
    return {**SMALL, "grid": {**SMALL["grid"], **grid}}


def refused(workdir, *args):
    """The output of a run that must stop before any job, with the checks every refusal shares."""
    result = snakemake(workdir, *args, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "WorkflowError in file" not in output and "Traceback" not in output, output[-3000:]
    assert 'File "' not in output, output[-3000:]
    assert not (workdir / "results").exists()
    return output


def test_a_config_error_is_its_message_alone(tmp_path):
    """It was preceded by 'WorkflowError in file .../common.smk, line 38' and followed by a
    stray traceback line."""
    workdir = prepare_workdir(tmp_path, {"experiments": {"small": experiment(resolution=0)}})
    output = refused(workdir, "--dry-run")
    assert (
        "invalid configuration:\n  - experiments.small.grid.resolution: 0 is less than the minimum" in output
    )


@pytest.mark.parametrize(
    "content, what",
    [
        ("experiments: {}\ntitle: caf\xe9\n".encode("latin-1"), "byte 0xe9 at offset 26"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "byte 0x89 at offset 0"),
    ],
)
def test_a_base_file_that_is_not_utf8_is_named(tmp_path, content, what):
    """It gave 'UnicodeDecodeError in file common.smk', naming neither base nor the file."""
    (tmp_path / "old.yaml").write_bytes(content)
    workdir = prepare_workdir(tmp_path, {"base": "old.yaml", "experiments": {"small": SMALL}})
    output = refused(workdir, "--dry-run")
    assert f"base: old.yaml ({workdir / 'old.yaml'}) is not UTF-8 text ({what})" in output
    assert "allowed: a YAML config file in UTF-8" in output


def test_a_device_variable_that_names_no_device_is_refused_before_any_job(tmp_path, monkeypatch):
    """TRAINABILITY_DEVICE=tpu was not checked: the first job failed with a torch error."""
    monkeypatch.setenv("TRAINABILITY_DEVICE", "tpu")
    workdir = prepare_workdir(tmp_path, {"experiments": {"small": SMALL}})
    output = refused(workdir, "--dry-run")
    assert (
        "TRAINABILITY_DEVICE='tpu' is not a device; allowed: auto (CUDA when visible, else cpu), cpu,"
        in output
    )
    assert "rule train_shard" not in output


def test_cuda_without_a_visible_gpu_is_named_before_the_jobs_that_would_train_here(tmp_path, monkeypatch):
    """A dry run warns (a cluster's jobs train on its GPU nodes); a local run stops before any job."""
    monkeypatch.setenv("TRAINABILITY_DEVICE", "cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    workdir = prepare_workdir(tmp_path, {"experiments": {"small": SMALL}})
    planned = snakemake(workdir, "--dry-run")
    output = planned.stdout + planned.stderr
    assert "TRAINABILITY_DEVICE='cuda': no CUDA device is visible here" in output
    assert "A run whose jobs train on this machine stops here." in output and "rule train_shard" in output
    output = refused(workdir, "results/small/frame0/grid.h5")
    assert "TRAINABILITY_DEVICE='cuda': no CUDA device is visible here" in output
    assert "allowed: cpu, or auto (this run's jobs train on this machine)" in output


def test_a_resolution_far_beyond_the_caps_is_refused_at_once(tmp_path):
    """1e11 ended in a MemoryError traceback; 2e7 took 32 s."""
    workdir = prepare_workdir(tmp_path, {"experiments": {"small": experiment(resolution=10**11)}})
    began = time.monotonic()
    output = refused(workdir, "--dry-run")
    assert time.monotonic() - began < 60
    assert f"experiments.small.grid.resolution: {10**11}^2 = {10**22} pixels do not fit" in output
    assert "allowed: a resolution up to 262144" in output


@pytest.mark.slow
def test_a_resolution_too_small_to_measure_warns_and_reports_no_dimension(tmp_path):
    """Resolution 4 reported dimension 0.00, spread -0.00 to -0.00, without a word."""
    workdir = prepare_workdir(tmp_path, {"experiments": {"tiny": experiment(resolution=4, shard_size=16)}})
    planned = snakemake(workdir, "--dry-run")
    warning = "experiments.tiny.grid.resolution: 4 is too small to measure a box-counting dimension"
    assert warning in planned.stdout + planned.stderr
    assert "it measures from resolution 12 on" in planned.stdout + planned.stderr
    snakemake(workdir, "results/tiny/dimension.json", "results/summary/dimension_table.md")
    result = json.loads((workdir / "results/tiny/dimension.json").read_text())
    assert result["median"] is None and result["n_slopes"] == 0
    assert result["reason"].startswith("resolution 4 < 12")
    table = (workdir / "results/summary/dimension_table.md").read_text()
    assert "| n/a (resolution 4 < 12" in table and "0.00" not in table.splitlines()[2]
