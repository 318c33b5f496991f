"""Validating and resolving the experiments of a layered config, in two passes before any
job starts: the JSON schema (types, allowed values, ranges; an integer field takes
integers only), then what the schema cannot express (trainability.config.experiment_checks:
bounds, precision of every frame, files, contradicting fields). Every problem names the
experiment and field it concerns. Also what the rules read of a resolved config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from trainability.config.experiment_checks import deepest_frames, semantic_problems, shard_limit_problems
from trainability.config.layering import LAYER_KEYS
from trainability.config.loading import ConfigError, schema_problems
from trainability.contract import grid, optimizers, problem
from trainability.contract.phase_space import axis_field

# Defaults are applied here (not injected by the schema) so that the resolved
# experiment is explicit and a new default never silently changes old results.
DEFAULTS = {
    "data": {"target_dim": 1, "seed": 0},
    "training": {"batch": "full", "dtype": "float64"},
    "phase_space": {"offset_mode": "every_step"},
    "zoom": {"frames": 1, "factor": 2.0},
}


# Defaults of the optional sections and fields added after the paper's six conditions:
# filled only where a section or model kind asks for them, so that an experiment that
# does not use them resolves exactly as before (same params, no reruns).
QUADRATIC_COSINE_DEFAULTS = {"form": "additive", "start": 1.0}


UNCERTAINTY_DEFAULTS = {"points": 512, "per_decade": 2, "largest": 0.1, "bootstrap": 1000, "seed": 0}


LINE_DEFAULTS = {"points_log2": 16}


# Pixels per side of the centre search's pilot frames (capped at the frame resolution).
PILOT_RESOLUTION = 32


# Caps on a frame's shards (config `limits`): 1.4e10 shards of a mistyped grid would
# hang the planner for hours; the paper's 4096^2 frames need 16 to 256.
LIMITS = {"max_shards_per_frame": 4096, "max_pixels_per_shard": 4096 * 4096}


def resolve_experiment(name: str, experiment: dict) -> dict:
    """Fill defaults and derived values: what jobs of this experiment use."""
    exp = copy.deepcopy(experiment)
    for section, defaults in DEFAULTS.items():
        exp[section] = {**defaults, **exp.get(section, {})}
    exp.setdefault("title", name)
    exp.setdefault("paper_dimension", None)
    exp["name"] = name
    zoom = exp["zoom"]
    # Whether a frame without boundary at its centre is an error (a centre meant to be on
    # the boundary: auto or given) or only a warning (the window's middle, by default).
    zoom["centre_on_boundary"] = "centre" in zoom
    if "centre" not in zoom:
        zoom["centre"] = [sum(exp["phase_space"]["x"]) / 2, sum(exp["phase_space"]["y"]) / 2]
    zoom["factor"] = float(zoom["factor"])
    if zoom["centre"] == "auto":
        # The default is capped at the frame resolution; a given value above it is refused.
        zoom.setdefault("pilot_resolution", min(PILOT_RESOLUTION, exp["grid"]["resolution"]))
    # As deep as the dtype resolves (counted up to grid.MAX_FRAMES + 1), before any job;
    # frames: max deeper than MAX_FRAMES stays "max", which validation refuses.
    zoom["max_frames"] = deepest_frames(exp)
    if zoom["frames"] == "max" and zoom["max_frames"] <= grid.MAX_FRAMES:
        zoom["frames"] = max(zoom["max_frames"], 1)
    _resolve_extensions(exp)
    data = exp["data"]
    if problem.model_kind(exp["model"]) == "mlp" and "init_file" not in data:
        data["size"] = problem.dataset_size(data.get("size", "params"), exp["model"], data["target_dim"])
    return exp


def _resolve_extensions(exp: dict) -> None:
    """Defaults of the model kind, the optimiser and the optional sections, in place.

    gd is the default optimiser and is left out of the resolved training section, so
    that experiments from before optimisers existed keep their params (and results).
    A hyperparameter on the y axis gets no fixed value."""
    on_axis = axis_field(exp["phase_space"]["kind"])
    if problem.model_kind(exp["model"]) == "quadratic_cosine":
        exp["model"] = {**QUADRATIC_COSINE_DEFAULTS, **exp["model"]}
        exp["model"]["start"] = float(exp["model"]["start"])
    training = exp["training"]
    if training.get("optimizer") == "gd":
        del training["optimizer"]
    for name in optimizers.OPTIMIZERS[optimizers.optimizer_of(training)]:
        if name != on_axis:
            training.setdefault(name, optimizers.DEFAULTS[name])
    if "uncertainty" in exp:
        exp["uncertainty"] = {**UNCERTAINTY_DEFAULTS, **exp["uncertainty"]}
    if "line" in exp:
        exp["line"] = {**LINE_DEFAULTS, "x": list(exp["phase_space"]["x"]), **exp["line"]}


def validate_config(config: dict, workdir: str | Path = ".") -> dict[str, dict]:
    """Validate everything; return the resolved experiments or raise ConfigError."""
    workdir = Path(workdir)
    # A config that still holds layering keys would silently lose its base files.
    problems = [
        f"{key}: not applied; layer the config first (layered_config)" for key in LAYER_KEYS if key in config
    ]
    problems += schema_problems(config)
    if problems:
        raise ConfigError(problems)
    resolved = {}
    for name, exp in config["experiments"].items():
        # The caps first: resolving loops over the frames, with R values per axis in each.
        if capped := shard_limit_problems(f"experiments.{name}", exp["grid"], limits(config)):
            problems += capped
            continue
        try:
            resolved[name] = resolve_experiment(name, exp)
        except ValueError as err:
            problems.append(f"experiments.{name}: {err}")
            continue
        problems += semantic_problems(name, resolved[name], workdir)
    summary_name = config.get("summary", {}).get("name", "summary")
    if summary_name in config["experiments"]:
        problems.append(
            f"summary.name: {summary_name!r} is an experiment's name (both live under results/); "
            f"allowed: any other name"
        )
    for name in config.get("summary", {}).get("experiments", []):
        if name not in config["experiments"]:
            problems.append(
                f"summary.experiments: unknown experiment {name!r}; allowed: {sorted(config['experiments'])}"
            )
    if problems:
        raise ConfigError(problems)
    return resolved


def limits(config: dict) -> dict[str, int]:
    """The config's `limits`, defaults filled in."""
    return {**LIMITS, **config.get("limits", {})}


def keep_shards(config: dict) -> bool:
    return bool(config.get("keep_shards", False))


def allow_mixed_arithmetic(config: dict) -> bool:
    return bool(config.get("allow_mixed_arithmetic", False))


def summary_experiments(config: dict) -> list[str]:
    return list(config.get("summary", {}).get("experiments", config["experiments"]))


def training_params(exp: dict) -> dict[str, Any]:
    """The part of a resolved experiment that determines training results."""
    return {
        "model": exp["model"],
        "data": exp["data"],
        "training": exp["training"],
        "phase_space": {k: exp["phase_space"][k] for k in ("kind", "offset_mode")},
        "resolution": exp["grid"]["resolution"],
    }


def as_builtin(value):
    """Plain Python types only, dict keys sorted: Snakemake tracks params by repr(), so the
    order of keys in a config file must not make a param look changed."""
    if isinstance(value, dict):
        return {k: as_builtin(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [as_builtin(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
