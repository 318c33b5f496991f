import math
import os
import sys
from pathlib import Path

# The package normally comes from `pip install -e .`; this keeps a plain
# checkout importable too.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

import trainability
from trainability import config as tconfig
from trainability import grid as tgrid
from trainability import problem as tproblem


wildcard_constraints:
    experiment=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    frame=r"\d+",
    shard=r"\d+",


localrules:
    all,
    six_panel,
    dimension_table,


# Validate everything before any job is scheduled; errors name experiment and field.
try:
    EXPERIMENTS = tconfig.validate_config(config, workdir=Path.cwd())
except tconfig.ConfigError as err:
    raise WorkflowError(str(err)) from None

SUMMARY = tconfig.summary_experiments(config)


def experiment(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def frames(name):
    return range(EXPERIMENTS[name]["zoom"]["frames"])


def n_shards(name):
    g = EXPERIMENTS[name]["grid"]
    return tgrid.shard_count(g["resolution"], g["shard_size"])


def shard_files(wildcards):
    return expand(
        "results/{experiment}/frame{frame}/shards/shard{shard}.h5",
        experiment=wildcards.experiment,
        frame=wildcards.frame,
        shard=range(n_shards(wildcards.experiment)),
    )


def score_files(wildcards):
    return expand(
        "results/{experiment}/frame{frame}/scores.h5",
        experiment=wildcards.experiment,
        frame=frames(wildcards.experiment),
    )


def input_files(wildcards):
    """Files an experiment reads (init weights/data, minibatch indices)."""
    exp = experiment(wildcards)
    files = {}
    if "init_file" in exp["data"]:
        files["init_file"] = exp["data"]["init_file"]
    if "minibatch_file" in exp["training"]:
        files["minibatch_file"] = exp["training"]["minibatch_file"]
    return files


# Params: only the values of *this* experiment that a rule uses, as plain
# Python types; Snakemake compares them with the last run to decide reruns.
def training_params(wildcards):
    return tconfig.as_builtin(tconfig.training_params(experiment(wildcards)))


def frame_window(wildcards):
    return tconfig.as_builtin(tgrid.frame_window(experiment(wildcards), int(wildcards.frame)))


def grid_params(wildcards):
    return tconfig.as_builtin(experiment(wildcards)["grid"])


def panel_params(name):
    exp = EXPERIMENTS[name]
    return tconfig.as_builtin(
        {
            "experiment": name,
            "title": exp["title"],
            "phase_space": exp["phase_space"]["kind"],
            "window": tgrid.frame_window(exp, 0),
            "paper_dimension": exp["paper_dimension"],
            "resolution": exp["grid"]["resolution"],
            "frames": exp["zoom"]["frames"],
        }
    )


def shard_work(exp):
    """(pixels, dataset size, floating-point operations) of one shard of an experiment."""
    g = exp["grid"]
    pixels = min(g["shard_size"], g["resolution"] ** 2)
    n_data = tproblem.dataset_size_of(exp)
    model, target = exp["model"], exp["data"].get("target_dim", 1)
    params = tproblem.n_parameters(model, target)
    # forward + backward ~ 6 flops per parameter per data point per step
    flops = 6.0 * params * n_data * pixels * exp["training"]["steps"]
    return pixels, n_data, flops


def train_mem_mb(wildcards, attempt):
    """Host memory of a shard job: work arrays of one 256-pixel block, shard results, headroom."""
    exp = experiment(wildcards)
    pixels, n_data, _ = shard_work(exp)
    work = 8 * n_data * exp["model"]["width"] * 256 * 8 + 16 * 8 * pixels
    return int((1000 + work / 2**20) * attempt)


def train_runtime(wildcards, attempt):
    """Minutes, from the shard's work at an assumed speed; doubled on each retry.

    TRAINABILITY_EXPECTED_GFLOPS is the float64 speed to plan for (default 10,
    a laptop CPU; a data-centre GPU sustains thousands): a runtime setting, so
    it is read from the environment and never triggers reruns.
    """
    _, _, flops = shard_work(experiment(wildcards))
    gflops = float(os.environ.get("TRAINABILITY_EXPECTED_GFLOPS", "10"))
    return int(math.ceil((10 + flops / (gflops * 1e9) / 60) * 2 ** (attempt - 1)))


def final_outputs():
    outputs = []
    for name in EXPERIMENTS:
        outputs += [
            f"results/{name}/figures/landscape.pdf",
            f"results/{name}/figures/landscape.png",
            f"results/{name}/figures/boxcount.pdf",
            f"results/{name}/figures/boxcount.png",
        ]
    outputs += [
        "results/summary/six_panel.pdf",
        "results/summary/six_panel.png",
        "results/summary/dimension_table.csv",
        "results/summary/dimension_table.md",
    ]
    return outputs


def shard_size(wildcards):
    return experiment(wildcards)["grid"]["shard_size"]


def experiment_panel(wildcards):
    return panel_params(wildcards.experiment)
