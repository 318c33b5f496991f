"""Loading, layering, validating and resolving the workflow configuration.

Layering comes first: a config may build on other config files (`base`)
and set fields of every experiment at once (`all_experiments`);
layered_config turns it into a plain config without those keys.

Validation happens in two passes, both before any job starts: the JSON
schema (types, allowed values, ranges; an integer field takes integers
only), then the checks the schema cannot express (trainability.config.experiment_checks:
bounds, precision of every frame, files, contradicting fields). Every
problem is reported with the experiment and field it concerns.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from trainability.config.experiment_checks import deepest_frames, semantic_problems, shard_limit_problems
from trainability.contract import grid, optimizers, problem
from trainability.contract.phase_space import axis_field

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

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

# Top-level keys that say how to build the config; layered_config consumes them.
LAYER_KEYS = ("base", "all_experiments")

# Pixels per side of the centre search's pilot frames (capped at the frame resolution).
PILOT_RESOLUTION = 32

# Caps on a frame's shards (config `limits`): 1.4e10 shards of a mistyped grid would
# hang the planner for hours; the paper's 4096^2 frames need 16 to 256.
LIMITS = {"max_shards_per_frame": 4096, "max_pixels_per_shard": 4096 * 4096}


class ConfigError(ValueError):
    """Invalid configuration; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def load_config(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def _field(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


# JSON Schema counts 12.0 as an integer; here an integer field takes integers only, so
# that `resolution: 12.0` is refused naming its field instead of failing in a job.
_STRICT_INTEGERS = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_STRICT_INTEGERS)


def schema_problems(config: dict, schema: dict | None = None, prefix: tuple = ()) -> list[str]:
    validator = _Validator(load_schema() if schema is None else schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        where = _field((*prefix, *error.path))
        # oneOf errors are unreadable; say what is allowed instead.
        if error.validator == "oneOf":
            allowed = error.schema.get("description", "see the schema")
            problems.append(f"{where}: {error.instance!r} is not valid; allowed: {allowed}")
        elif error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            problems.append(f"{where}: {error.message}; allowed fields: {allowed}")
        else:
            problems.append(f"{where}: {error.message}")
    return problems


def deep_merge(lower: dict, upper: dict) -> dict:
    """upper over lower: dicts merge key by key, any other value (lists included) replaces."""
    merged = copy.deepcopy(lower)
    for key, value in upper.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def layered_config(config: dict, workdir: str | Path = ".", overrides: Mapping | None = None) -> dict:
    """The config that runs, without the layering keys (see config/README.md).

    Lowest first: the `base` files (in list order, each layered the same way),
    then `config` itself, then its `all_experiments` over every experiment, then
    `overrides` (Snakemake's --config: it keeps the last word). Paths are
    relative to workdir. An experiment set to null (``experiments: {name: null}``)
    removes the base's experiment of that name.
    """
    layered = _layered(config, Path(workdir), chain=())
    if overrides:
        layered = deep_merge(layered, {k: v for k, v in overrides.items() if k not in LAYER_KEYS})
    return layered


def _layered(config: dict, workdir: Path, chain: tuple) -> dict:
    """chain: the (path, resolved path) of the base files that led here, outermost first."""
    where = f" (in {chain[-1][0]})" if chain else ""
    below: dict = {}
    for path in _base_paths(config.get("base", []), where):
        resolved = (workdir / path).resolve()
        if resolved in [r for _, r in chain]:
            names = [p for p, _ in chain] + [path]
            raise ConfigError([f"base: cycle of base files: {' -> '.join(names)}"])
        base = _read_base(path, resolved, where)
        below = deep_merge(below, _layered(base, workdir, (*chain, (path, resolved))))
    merged = deep_merge(below, {k: v for k, v in config.items() if k not in LAYER_KEYS})
    if isinstance(merged.get("experiments"), dict):
        # An experiment set to null leaves out one of the base's (figure1.yaml: no 1-D control).
        merged["experiments"] = {k: v for k, v in merged["experiments"].items() if v is not None}
    if "all_experiments" in config:
        merged = _over_every_experiment(merged, config["all_experiments"], where)
    return merged


def base_files(config: dict, workdir: str | Path = ".") -> list[str]:
    """The `base` files a config builds on, recursively, lowest first (for provenance).

    Call it on the config as given, once ``layered_config`` has accepted it (cycles refused)."""
    files: list[str] = []
    for path in _base_paths(config.get("base", []), ""):
        below = base_files(_read_base(path, (Path(workdir) / path).resolve(), ""), workdir)
        files += [f for f in [*below, path] if f not in files]
    return files


def _base_paths(value, where: str) -> list[str]:
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(
            [
                f"base{where}: {value!r} is not valid; allowed: a path or a list of paths "
                f"of config files (relative to the working directory)"
            ]
        )
    return paths


def _read_base(path: str, resolved: Path, where: str) -> dict:
    try:
        base = yaml.safe_load(resolved.read_text(encoding="utf-8"))
    except OSError as err:
        reason = err.strerror or err
        raise ConfigError([f"base{where}: cannot read {path} ({resolved}): {reason}"]) from None
    except UnicodeDecodeError as err:
        byte = f"byte {err.object[err.start]:#04x} at offset {err.start}"
        reason = f"{path} ({resolved}) is not UTF-8 text ({byte}); allowed: a YAML config file in UTF-8"
        raise ConfigError([f"base{where}: {reason}"]) from None
    except yaml.YAMLError as err:
        raise ConfigError([f"base{where}: {path} is not valid YAML: {err}"]) from None
    if base is None:
        return {}
    if not isinstance(base, dict):
        kind = type(base).__name__
        raise ConfigError([f"base{where}: {path} holds a {kind}, expected a mapping of config keys"])
    return base


def _without_required(schema):
    if isinstance(schema, dict):
        # A "required" list, not a property that happens to be called so.
        return {
            k: _without_required(v)
            for k, v in schema.items()
            if not (k == "required" and isinstance(v, list))
        }
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def all_experiments_problems(value) -> list[str]:
    """all_experiments is part of an experiment: checked as one with no field required."""
    if not isinstance(value, dict):
        return [
            f"all_experiments: {value!r} is not valid; allowed: a mapping of experiment fields merged "
            f"over every experiment, e.g. {{grid: {{resolution: 4096}}}}"
        ]
    defs = _without_required(load_schema()["$defs"])
    return schema_problems(value, {"$defs": defs, **defs["experiment"]}, prefix=("all_experiments",))


def _over_every_experiment(config: dict, common, where: str) -> dict:
    problems = all_experiments_problems(common)
    if problems:
        raise ConfigError([p.replace("all_experiments", f"all_experiments{where}", 1) for p in problems])
    experiments = config.get("experiments")
    if not isinstance(experiments, dict):
        return config  # the schema names what is wrong with it
    config["experiments"] = {
        # Anything but a mapping is left as it is, for the schema to name.
        name: deep_merge(exp, common) if isinstance(exp, dict) else exp
        for name, exp in experiments.items()
    }
    return config


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
