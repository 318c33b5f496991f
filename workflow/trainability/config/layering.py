"""Layering: a config may build on other config files (`base`) and set fields of every
experiment at once (`all_experiments`); ``layered_config`` turns it into a plain config
without those keys (config/README.md)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import yaml

from trainability.config.loading import ConfigError, load_schema, schema_problems

# Top-level keys that say how to build the config; layered_config consumes them.
LAYER_KEYS = ("base", "all_experiments")


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
