"""Bad configs stop real Snakemake runs before any job, naming the field."""

import yaml

from workflow_helpers import TINY_CONFIG, prepare_workdir, snakemake


def test_workflow_refuses_bad_config_before_any_job(tmp_path):
    """Through Snakemake itself: non-zero exit, the field named, nothing created."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["experiments"]["tanh_small"]["model"]["nonlinearity"] = "swish"
    config["experiments"]["tanh_small"]["grid"]["shard_size"] = 0
    workdir = prepare_workdir(tmp_path, config)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments.tanh_small.model.nonlinearity: 'swish' is not one of" in output
    assert "experiments.tanh_small.grid.shard_size: 0 is less than the minimum of 1" in output
    assert not (workdir / "results").exists()


def test_the_workflow_refuses_a_bad_optimizer_before_any_job(tmp_path):
    """Through Snakemake itself: non-zero exit, every field named, nothing created."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    exp = config["experiments"]["tanh_small"]
    exp["training"].update(optimizer="adam", eps=0.0)
    exp["data"]["per_pixel"] = ["minibatch"]
    workdir = prepare_workdir(tmp_path, config)
    result = snakemake(workdir, "--dry-run", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "experiments.tanh_small.training.eps: 0.0 is outside the allowed range; allowed: eps > 0" in output
    assert "experiments.tanh_small.data.per_pixel: 'minibatch' but training.batch is 'full'" in output
    assert not (workdir / "results").exists()
