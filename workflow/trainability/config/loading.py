"""Reading config files and checking them against the JSON schema
(workflow/schemas/config.schema.yaml): one message per problem, naming its field."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


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
