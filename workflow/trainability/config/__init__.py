"""The workflow's configuration: loading, layering, validating, resolving.

``loading`` (files and the JSON schema), ``layering`` (``base`` files and
``all_experiments``), ``validation`` (every experiment resolved and checked, and what the
rules read of it), ``experiment_checks`` (what the schema cannot express: bounds, the
precision of every frame, files, caps), ``extension_checks`` (optimisers, per-pixel draws,
the 1-D control, the estimators). Imports the contract and the boundary only. The names
below are the package's interface; everything else is its modules'.
"""

from trainability.config.layering import LAYER_KEYS, base_files, deep_merge, layered_config
from trainability.config.loading import ConfigError, load_config, load_schema, schema_problems
from trainability.config.validation import (
    DEFAULTS,
    LIMITS,
    PILOT_RESOLUTION,
    allow_mixed_arithmetic,
    as_builtin,
    keep_shards,
    limits,
    resolve_experiment,
    summary_experiments,
    training_params,
    validate_config,
)

__all__ = [
    "DEFAULTS",
    "LAYER_KEYS",
    "LIMITS",
    "PILOT_RESOLUTION",
    "ConfigError",
    "allow_mixed_arithmetic",
    "as_builtin",
    "base_files",
    "deep_merge",
    "keep_shards",
    "layered_config",
    "limits",
    "load_config",
    "load_schema",
    "resolve_experiment",
    "schema_problems",
    "summary_experiments",
    "training_params",
    "validate_config",
]
