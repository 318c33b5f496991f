import math
import os
import sys
from pathlib import Path

# The package normally comes from `pip install -e .`; this keeps a plain
# checkout importable too.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

import trainability
from trainability import archive as tarchive
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
# Layering (base files, all_experiments; --config keeps the last word) replaces the
# config in place: rules' scripts and the report read this very dict.
try:
    _layered = tconfig.layered_config(config, Path.cwd(), overrides=workflow.config_settings.config)
    BASE_FILES = tconfig.base_files(config, Path.cwd())  # after layering: it refused cycles
    config.clear()
    config.update(_layered)
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


# The results layout, spelled only here: the rules' output: and every list of an
# experiment's files (inputs, the damaged-shard check, the archive) come from these
# templates. All of an experiment's files lie under EXPERIMENT_DIRS (its archive packs them).
EXPERIMENT_DIRS = ("results/{experiment}", "logs/{experiment}")
SHARD = "results/{experiment}/frame{frame}/shards/shard{shard}.h5"
GRID = "results/{experiment}/frame{frame}/grid.h5"
SCORES = "results/{experiment}/frame{frame}/scores.h5"
DIMENSION = "results/{experiment}/dimension.json"
LANDSCAPE_PDF = "results/{experiment}/figures/landscape.pdf"
LANDSCAPE_PNG = "results/{experiment}/figures/landscape.png"
BOXCOUNT_PDF = "results/{experiment}/figures/boxcount.pdf"
BOXCOUNT_PNG = "results/{experiment}/figures/boxcount.png"
SIX_PANEL_PDF = "results/summary/six_panel.pdf"
SIX_PANEL_PNG = "results/summary/six_panel.png"
DIMENSION_TABLE_CSV = "results/summary/dimension_table.csv"
DIMENSION_TABLE_MD = "results/summary/dimension_table.md"
FIGURES = (LANDSCAPE_PDF, LANDSCAPE_PNG, BOXCOUNT_PDF, BOXCOUNT_PNG)
SUMMARY_OUTPUTS = (SIX_PANEL_PDF, SIX_PANEL_PNG, DIMENSION_TABLE_CSV, DIMENSION_TABLE_MD)


def frame0(template):
    """``template`` for frame 0, other wildcards kept (the figures show frame 0)."""
    return expand(template, frame=0, allow_missing=True)[0]


def frame_shards(name, frame):
    return expand(SHARD, experiment=name, frame=frame, shard=range(n_shards(name)))


def experiment_shards(name):
    """Every shard file of an experiment, frame by frame, in shard order."""
    return [path for frame in frames(name) for path in frame_shards(name, frame)]


def experiment_grids(name):
    """The merged grid of each frame, in frame order."""
    return expand(GRID, experiment=name, frame=frames(name))


def finished_outputs(name):
    """What a finished experiment has made; its archive refuses to go without these."""
    outputs = expand([DIMENSION, *FIGURES], experiment=name)
    for frame in frames(name):
        outputs += expand([GRID, SCORES], experiment=name, frame=frame)
    return outputs


def archived(wildcards):
    """The experiment to archive; an unknown name stops the job, naming the known ones."""
    tarchive.experiment_of(wildcards.experiment, EXPERIMENTS)
    return wildcards.experiment


def shard_files(wildcards):
    return frame_shards(wildcards.experiment, wildcards.frame)


def score_files(wildcards):
    return expand(SCORES, experiment=wildcards.experiment, frame=frames(wildcards.experiment))


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
    figures = [path for name in EXPERIMENTS for path in expand(FIGURES, experiment=name)]
    return figures + list(SUMMARY_OUTPUTS)


def shard_size(wildcards):
    return experiment(wildcards)["grid"]["shard_size"]


def experiment_panel(wildcards):
    return panel_params(wildcards.experiment)
