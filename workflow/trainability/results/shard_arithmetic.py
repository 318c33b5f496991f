"""Which arithmetic computed a result, and whether a frame mixes several.

Every shard records ``arithmetic``: ``{"kernel", "build", "device"}``
(``kernels.arithmetic``). Shards of the same identity hold the same bits for
the same pixels; shards of different identities agree to rounding only, which
in a chaotic window can flip labels. A frame assembled from several
identities is therefore refused unless the config says
``allow_mixed_arithmetic: true``. Plain Python: the merge job needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

IDENTITY_FIELDS = ("kernel", "build", "device")


def identity(record: Mapping[str, str] | None) -> str:
    """One string per arithmetic; ``unknown`` for shards written before it was recorded."""
    if not record:
        return "unknown"
    return " / ".join(str(record.get(key, "?")) for key in IDENTITY_FIELDS)


def by_identity(paths: Sequence[str], records: Sequence[Mapping | None]) -> dict[str, list[str]]:
    """{identity: the shard files computed with it}, identities sorted."""
    groups: dict[str, list[str]] = {}
    for path, record in zip(paths, records, strict=True):
        groups.setdefault(identity(record), []).append(str(path))
    return dict(sorted(groups.items()))


def mixing_problem(groups: Mapping[str, Sequence[str]], allowed: bool) -> str | None:
    """Why a frame may not be merged from shards so grouped (``by_identity``); None when they
    share one identity or mixing is allowed."""
    if len(groups) <= 1 or allowed:
        return None
    listing = "; ".join(f"{name}: {', '.join(files)}" for name, files in groups.items())
    return (
        f"the shards of this frame were computed with {len(groups)} different arithmetics, which agree "
        f"to rounding, not bit for bit ({listing}). Remake the odd ones on one kind of machine (move "
        f"them aside and rerun, e.g. with TRAINABILITY_DEVICE set), or set allow_mixed_arithmetic: true in "
        f"the config to merge them anyway"
    )
