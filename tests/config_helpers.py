"""A small valid config, and reading its problems: shared by the config tests."""

import copy

import pytest

from trainability.config import ConfigError, validate_config

GOOD = {
    "experiments": {
        "exp": {
            "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
            "data": {"size": "params", "target_dim": 1, "seed": 0},
            "training": {"steps": 10, "batch": "full", "dtype": "float64"},
            "phase_space": {"kind": "lr_vs_lr", "x": [-1, 1], "y": [-1, 1]},
            "grid": {"resolution": 8, "shard_size": 16},
        }
    }
}


def with_change(path, value, base=GOOD):
    config = copy.deepcopy(base)
    node = config["experiments"]["exp"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return config


DELETE = object()


def problems_of(config, workdir="."):
    with pytest.raises(ConfigError) as info:
        validate_config(config, workdir)
    return "\n".join(info.value.problems)
