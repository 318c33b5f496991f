import os
import sys
from pathlib import Path

from snakemake.logging import logger as _logger

# The package normally comes from `pip install -e .`; this keeps a plain
# checkout importable too.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

import trainability
from trainability.results import archive as tarchive
from trainability.boundary import centre as tcentre
from trainability.boundary import precise_centre as tprecise
from trainability import config as tconfig
from trainability.config import experiment_checks as texperiment_checks
from trainability.contract import grid as tgrid
from trainability.boundary import scoring as tscoring


wildcard_constraints:
    experiment=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    frame=r"\d+",
    shard=r"\d+",


localrules:
    all,
    six_panel,
    dimension_table,


def stop_workflow(message):
    """End Snakemake before any job with ``message`` alone and exit status 1: a WorkflowError
    raised in a rules file is printed under that file's name and line, with a traceback line."""
    _logger.error(message)
    raise SystemExit(1)


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
    stop_workflow(str(err))
if workflow.is_main_process:
    for _warning in texperiment_checks.validation_warnings(EXPERIMENTS):
        _logger.warning(_warning)

SUMMARY = tconfig.summary_experiments(config)


def experiment_named(name):
    """The resolved experiment; a target outside the config stops, naming what exists."""
    if name not in EXPERIMENTS:
        raise WorkflowError(f"no experiment {name!r} in the config; experiments: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def experiment(wildcards):
    exp = experiment_named(wildcards.experiment)
    if "frame" in wildcards.keys() and int(wildcards.frame) >= exp["zoom"]["frames"]:
        n = exp["zoom"]["frames"]
        raise WorkflowError(
            f"experiment {wildcards.experiment!r} has frames 0..{n - 1} (zoom.frames: {n}); "
            f"there is no frame {wildcards.frame}"
        )
    return exp


def frames(name):
    return range(experiment_named(name)["zoom"]["frames"])


def is_sequence(name):
    """A zoom sequence (more than one frame) gets its strip, video and dimension-vs-depth figure."""
    return experiment_named(name)["zoom"]["frames"] > 1


def auto_centre(name):
    return experiment_named(name)["zoom"]["centre"] == "auto"


def n_shards(name):
    g = experiment_named(name)["grid"]
    return tgrid.shard_count(g["resolution"], g["shard_size"])


# The results layout, spelled only here: the rules' output: and every list of an
# experiment's files (inputs, the damaged-shard check, the archive) come from these
# templates. All of an experiment's files lie under EXPERIMENT_DIRS (its archive packs them).
EXPERIMENT_DIRS = ("results/{experiment}", "logs/{experiment}")
SHARD = "results/{experiment}/frame{frame}/shards/shard{shard}.h5"
GRID = "results/{experiment}/frame{frame}/grid.h5"
SCORES = "results/{experiment}/frame{frame}/scores.h5"
DIMENSION = "results/{experiment}/dimension.json"
CENTRE = "results/{experiment}/centre.json"
CENTRE_HISTORY = "logs/{experiment}/centre_history.jsonl"
FRAME_IMAGE = "results/{experiment}/frame{frame}/landscape.png"
FRAME_PANEL = "results/{experiment}/frame{frame}/panel.png"
ZOOM_STRIP_PDF = "results/{experiment}/figures/zoom_strip.pdf"
ZOOM_STRIP_PNG = "results/{experiment}/figures/zoom_strip.png"
DIMENSION_DEPTH_PDF = "results/{experiment}/figures/dimension_vs_depth.pdf"
DIMENSION_DEPTH_PNG = "results/{experiment}/figures/dimension_vs_depth.png"
ZOOM_VIDEO = "results/{experiment}/figures/zoom.mp4"
LANDSCAPE_PDF = "results/{experiment}/figures/landscape.pdf"
LANDSCAPE_PNG = "results/{experiment}/figures/landscape.png"
BOXCOUNT_PDF = "results/{experiment}/figures/boxcount.pdf"
BOXCOUNT_PNG = "results/{experiment}/figures/boxcount.png"
# The second and third estimators, for experiments that ask for them (uncertainty:, line:).
UNCERTAINTY = "results/{experiment}/uncertainty.json"
UNCERTAINTY_PDF = "results/{experiment}/figures/uncertainty.pdf"
UNCERTAINTY_PNG = "results/{experiment}/figures/uncertainty.png"
LINE = "results/{experiment}/line_dimension.json"
LINE_PDF = "results/{experiment}/figures/line_dimension.pdf"
LINE_PNG = "results/{experiment}/figures/line_dimension.png"
# A config may name its summary (summary.name), so that two configs' summaries never overwrite each other.
SUMMARY_DIR = f"results/{config.get('summary', {}).get('name', 'summary')}"
SIX_PANEL_PDF = os.path.join(SUMMARY_DIR, "six_panel.pdf")
SIX_PANEL_PNG = os.path.join(SUMMARY_DIR, "six_panel.png")
DIMENSION_TABLE_CSV = os.path.join(SUMMARY_DIR, "dimension_table.csv")
DIMENSION_TABLE_MD = os.path.join(SUMMARY_DIR, "dimension_table.md")
FIGURES = (LANDSCAPE_PDF, LANDSCAPE_PNG, BOXCOUNT_PDF, BOXCOUNT_PNG)
SEQUENCE_FIGURES = (ZOOM_STRIP_PDF, ZOOM_STRIP_PNG, DIMENSION_DEPTH_PDF, DIMENSION_DEPTH_PNG, ZOOM_VIDEO)
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


def frame_images(name):
    """The native-resolution picture of each frame, in frame order."""
    return expand(FRAME_IMAGE, experiment=name, frame=frames(name))


def experiment_outputs(name):
    """The figures `all` asks for: every experiment's, and a sequence's own."""
    outputs = expand(FIGURES, experiment=name)
    if is_sequence(name):
        outputs += expand(SEQUENCE_FIGURES, experiment=name)
        outputs += expand([FRAME_IMAGE, FRAME_PANEL], experiment=name, frame=frames(name))
    return outputs


def estimator_outputs(name):
    """The uncertainty exponent's and the line's results, where the experiment asks for them."""
    exp, outputs = experiment_named(name), []
    if "uncertainty" in exp:
        outputs += expand([UNCERTAINTY, UNCERTAINTY_PDF, UNCERTAINTY_PNG], experiment=name)
    if "line" in exp:
        outputs += expand([LINE, LINE_PDF, LINE_PNG], experiment=name)
    return outputs


def finished_outputs(name):
    """What a finished experiment has made; its archive refuses to go without these."""
    outputs = expand(DIMENSION, experiment=name) + experiment_outputs(name) + estimator_outputs(name)
    if auto_centre(name):
        outputs += expand(CENTRE, experiment=name)
    for frame in frames(name):
        outputs += expand([GRID, SCORES], experiment=name, frame=frame)
    return outputs


def archived(wildcards):
    """The experiment to archive; an unknown name stops the job, naming the known ones."""
    tarchive.experiment_of(wildcards.experiment, EXPERIMENTS)
    return wildcards.experiment


def shard_files(wildcards):
    experiment(wildcards)  # the frame exists
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


def centre_file(wildcards):
    """The automatic centre a frame's window is computed from (none for a given centre)."""
    if auto_centre(wildcards.experiment):
        return {"centre": CENTRE.format(experiment=wildcards.experiment)}
    return {}


def frame_inputs(wildcards):
    """A shard's inputs: the experiment's files and, for an automatic centre, the centre."""
    return {**input_files(wildcards), **centre_file(wildcards)}


# Params: only the values of *this* experiment that a rule uses, as plain
# Python types; Snakemake compares them with the last run to decide reruns.
def training_params(wildcards):
    return tconfig.as_builtin(tconfig.training_params(experiment(wildcards)))


def frame_window_spec(wildcards):
    """The frame's window, or for an automatic centre what it is computed from (grid.window_spec)."""
    return tconfig.as_builtin(tgrid.window_spec(experiment(wildcards), int(wildcards.frame)))


def centre_made_with(name):
    """Everything the automatic centre of experiment ``name`` depends on: find_centre's params,
    recorded in centre.json as ``made_with`` and checked against the config when the workflow
    starts. Not the number of frames, so that adding frames never moves the centre (the
    search always descends as deep as the dtype resolves)."""
    exp = experiment_named(name)
    return {
        "training": tconfig.as_builtin(tconfig.training_params(exp)),
        "search": centre_search(exp),
        "kernel": config.get("kernel", "auto"),
        "results_version": trainability.RESULTS_VERSION,
    }


def gpus(wildcards):
    """GPUs a training job asks for: 1, or 0 for double-double (float64x2), which only the
    CPU kernel runs (on SLURM: a CPU partition, see config/paper_deep.yaml)."""
    return 0 if experiment_named(wildcards.experiment)["training"]["dtype"] == "float64x2" else 1


def float64_limit(exp):
    """The depth (decades) of float64's deepest frame of a double-double sequence, marked on its
    dimension-vs-depth figure; None for other dtypes."""
    if exp["training"]["dtype"] != "float64x2":
        return None
    ps, zoom, res = exp["phase_space"], exp["zoom"], exp["grid"]["resolution"]
    deepest = tgrid.max_frames((ps["x"], ps["y"]), zoom["factor"], zoom["centre"], res, "float64")
    return tgrid.depth_decades(zoom["factor"], max(deepest - 1, 0))


def centre_search(exp):
    """The search's own settings (trainability.boundary.centre): window, factor, depth, pilots, tolerance."""
    zoom, ps, res = exp["zoom"], exp["phase_space"], exp["grid"]["resolution"]
    depth = max(zoom["max_frames"], 1)
    if exp["training"]["dtype"] == "float64x2":  # narrower than float64 tells c - h from c + h
        widths = [(hi - lo) / zoom["factor"] ** (depth - 1) for lo, hi in (ps["x"], ps["y"])]
    else:
        deepest = tgrid.concentric_window((ps["x"], ps["y"]), zoom["factor"], depth - 1)
        widths = [hi - lo for lo, hi in deepest]
    spacing = min(widths) / max(res - 1, 1)
    return tconfig.as_builtin(
        {
            "window0": [ps["x"], ps["y"]],
            "factor": zoom["factor"],
            "depth": depth,
            "pilot_resolution": zoom["pilot_resolution"],
            # The centre is pinned to an eighth of the deepest frame's pixel spacing.
            "tolerance": spacing / 8,
            "resolution": res,
            "dtype": exp["training"]["dtype"],
            "version": tcentre.SEARCH_VERSION,
        }
        # Double-double's search re-bases its coordinates as it descends: its own version too.
        | ({"precise_version": tprecise.VERSION} if exp["training"]["dtype"] == "float64x2" else {})
    )


def sequence_params(wildcards):
    """The depth of each frame of the sequence, in decades (for the dimension and its figures)."""
    zoom = experiment(wildcards)["zoom"]
    return {
        "factor": zoom["factor"],
        "decades": [tgrid.depth_decades(zoom["factor"], k) for k in frames(wildcards.experiment)],
        "centre_on_boundary": zoom["centre_on_boundary"],
    }


def label_measure(wildcards):
    """The measure whose sign labels this experiment's pixels (scoring.LABEL_MEASURES)."""
    return tscoring.label_measure(experiment(wildcards)["model"])


def estimator_window(wildcards):
    """The experiment's window (phase_space x and y), where its estimators sample."""
    ps = experiment(wildcards)["phase_space"]
    return tconfig.as_builtin([ps["x"], ps["y"]])


def uncertainty_params(wildcards):
    return tconfig.as_builtin(experiment(wildcards)["uncertainty"])


def line_params(wildcards):
    return tconfig.as_builtin(experiment(wildcards)["line"])


def summary_estimates(kind):
    """{experiment: result file} of the summary experiments that have the estimator."""
    template = {"uncertainty": UNCERTAINTY, "line": LINE}[kind]
    return {name: template.format(experiment=name) for name in SUMMARY if kind in experiment_named(name)}


def frame_params(wildcards):
    exp, frame = experiment(wildcards), int(wildcards.frame)
    return {
        "title": exp["title"],
        "phase_space": exp["phase_space"]["kind"],
        "measure": tscoring.label_measure(exp["model"]),
        "frame": frame,
        "decades": tgrid.depth_decades(exp["zoom"]["factor"], frame),
    }


def grid_params(wildcards):
    return tconfig.as_builtin(experiment(wildcards)["grid"])


def panel_params(name):
    exp = experiment_named(name)
    return tconfig.as_builtin(
        {
            "experiment": name,
            "title": exp["title"],
            "phase_space": exp["phase_space"]["kind"],
            "paper_dimension": exp["paper_dimension"],
            "measure": tscoring.label_measure(exp["model"]),
            "resolution": exp["grid"]["resolution"],
            "frames": exp["zoom"]["frames"],
            "decades": tgrid.depth_decades(exp["zoom"]["factor"], exp["zoom"]["frames"] - 1),
        }
    )


def final_outputs():
    """The default target: every finished output, grids and scores included, so that a
    grid or scores file that is missing (a failed merge or score, a damaged file moved
    aside) is remade even when the figures made from it exist."""
    return [path for name in EXPERIMENTS for path in finished_outputs(name)] + list(SUMMARY_OUTPUTS)


def shard_size(wildcards):
    return experiment(wildcards)["grid"]["shard_size"]


def experiment_panel(wildcards):
    return panel_params(wildcards.experiment)
