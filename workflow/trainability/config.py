"""Loading, validating and resolving the workflow configuration.

Validation happens in two passes, both before any job starts: the JSON
schema (types, allowed values, ranges), then checks the schema cannot
express (bounds ordered, init files readable and well-formed, a grid fine
enough that float32 cannot tell neighbouring pixels apart). Every problem
is reported with the experiment and field it concerns.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from trainability import grid, problem

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# Defaults are applied here (not injected by the schema) so that the resolved
# experiment is explicit and a new default never silently changes old results.
DEFAULTS = {
    "data": {"target_dim": 1, "seed": 0},
    "training": {"batch": "full", "dtype": "float64"},
    "phase_space": {"offset_mode": "every_step"},
    "zoom": {"frames": 1, "factor": 2.0},
}


class ConfigError(ValueError):
    """Invalid configuration; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def load_config(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def _field(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def schema_problems(config: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        # oneOf errors are unreadable; say what is allowed instead.
        if error.validator == "oneOf":
            allowed = error.schema.get("description", "see the schema")
            problems.append(f"{_field(error.path)}: {error.instance!r} is not valid; allowed: {allowed}")
        elif error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            problems.append(f"{_field(error.path)}: {error.message}; allowed fields: {allowed}")
        else:
            problems.append(f"{_field(error.path)}: {error.message}")
    return problems


def resolve_experiment(name: str, experiment: dict) -> dict:
    """Fill defaults and derived values: what jobs of this experiment use."""
    exp = copy.deepcopy(experiment)
    for section, defaults in DEFAULTS.items():
        exp[section] = {**defaults, **exp.get(section, {})}
    exp.setdefault("title", name)
    exp.setdefault("paper_dimension", None)
    exp["name"] = name
    zoom = exp["zoom"]
    if "centre" not in zoom:
        zoom["centre"] = [sum(exp["phase_space"]["x"]) / 2, sum(exp["phase_space"]["y"]) / 2]
    zoom["factor"] = float(zoom["factor"])
    data = exp["data"]
    if "init_file" not in data:
        data["size"] = problem.dataset_size(data.get("size", "params"), exp["model"], data["target_dim"])
    return exp


def semantic_problems(name: str, exp: dict, workdir: Path) -> list[str]:
    """Checks the schema cannot express; exp is resolved."""
    where = f"experiments.{name}"
    problems = []
    ps = exp["phase_space"]
    for axis in ("x", "y"):
        lo, hi = ps[axis]
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            problems.append(f"{where}.phase_space.{axis}: bounds must be finite with min < max, got {[lo, hi]}")
    if problems:
        return problems

    # Every frame of a zoom sequence must still resolve neighbouring pixels.
    res = exp["grid"]["resolution"]
    dtype = exp["training"]["dtype"]
    for frame in range(exp["zoom"]["frames"]):
        window = grid.frame_window(exp, frame)
        for axis, (lo, hi) in zip(("x", "y"), window):
            if not grid.axis_resolves_pixels(lo, hi, res, dtype):
                problems.append(
                    f"{where}.phase_space.{axis}: window {[lo, hi]} (frame {frame}) is too narrow for "
                    f"{res} pixels in {dtype}: neighbouring pixels get equal hyperparameters; "
                    f"use dtype float64, fewer zoom frames or a lower resolution"
                )
                break

    data = exp["data"]
    if "init_file" in data:
        path = workdir / data["init_file"]
        try:
            problem.load_init_file(path, exp["model"], data.get("target_dim", 1))
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{where}.data.init_file: {err}")
    batch = exp["training"]["batch"]
    if "minibatch_file" in exp["training"]:
        if batch == "full":
            problems.append(f"{where}.training.minibatch_file: given but training.batch is 'full'")
        else:
            try:
                n = problem.dataset_size_of(exp, workdir)
                problem.load_minibatch_file(
                    workdir / exp["training"]["minibatch_file"], exp["training"]["steps"], batch, n
                )
            except (OSError, ValueError) as err:
                problems.append(f"{where}.training.minibatch_file: {err}")
    return problems


def validate_config(config: dict, workdir: str | Path = ".") -> dict[str, dict]:
    """Validate everything; return the resolved experiments or raise ConfigError."""
    workdir = Path(workdir)
    problems = schema_problems(config)
    if problems:
        raise ConfigError(problems)
    resolved = {}
    for name, exp in config["experiments"].items():
        try:
            resolved[name] = resolve_experiment(name, exp)
        except ValueError as err:
            problems.append(f"experiments.{name}: {err}")
            continue
        problems += semantic_problems(name, resolved[name], workdir)
    for name in config.get("summary", {}).get("experiments", []):
        if name not in config["experiments"]:
            problems.append(
                f"summary.experiments: unknown experiment {name!r}; allowed: {sorted(config['experiments'])}"
            )
    if problems:
        raise ConfigError(problems)
    return resolved


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
    """Plain Python types only: Snakemake tracks params by repr()."""
    if isinstance(value, dict):
        return {k: as_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_builtin(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
