"""Test-only fault injection for shard jobs (tests/workflow/test_faults.py, tests/slurm/test_slurm.py).

Two environment variables, unset outside the tests (then nothing happens):

* ``TRAINABILITY_TEST_FAIL_SHARDS="experiment:frame:shard,..."``: these shards fail;
* ``TRAINABILITY_TEST_SLOW_SHARDS="experiment:frame:shard=seconds,..."``: these shards
  sleep first (time to scancel or interrupt them).

Neither changes a result: a shard either fails before training or trains as always.
A malformed value is an error naming the variable, not a silently ignored fault.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping

FAIL = "TRAINABILITY_TEST_FAIL_SHARDS"
SLOW = "TRAINABILITY_TEST_SLOW_SHARDS"

_SHARD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_-]*):(\d+):(\d+)")
log = logging.getLogger(__name__)


def _entries(environ: Mapping[str, str], variable: str) -> list[str]:
    return [e.strip() for e in environ.get(variable, "").split(",") if e.strip()]


def _shard(text: str) -> tuple[str, int, int] | None:
    match = _SHARD.fullmatch(text.strip())
    return match and (match[1], int(match[2]), int(match[3]))


def failing(environ: Mapping[str, str]) -> set[tuple[str, int, int]]:
    """The shards (experiment, frame, shard) TRAINABILITY_TEST_FAIL_SHARDS makes fail."""
    shards = set()
    for entry in _entries(environ, FAIL):
        if not (shard := _shard(entry)):
            raise ValueError(f"{FAIL}: entry {entry!r} is not experiment:frame:shard")
        shards.add(shard)
    return shards


def slow(environ: Mapping[str, str]) -> dict[tuple[str, int, int], float]:
    """{(experiment, frame, shard): seconds} TRAINABILITY_TEST_SLOW_SHARDS makes sleep."""
    delays = {}
    for entry in _entries(environ, SLOW):
        who, _, seconds = entry.partition("=")
        try:
            delay = float(seconds)
        except ValueError:
            delay = math.nan
        if not (shard := _shard(who)) or not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"{SLOW}: entry {entry!r} is not experiment:frame:shard=seconds")
        delays[shard] = delay
    return delays


def inject(
    experiment: str,
    frame: int | str,
    shard: int | str,
    environ: Mapping[str, str] = os.environ,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Sleep and/or fail as the variables say for this shard; nothing when they are unset."""
    me = (experiment, int(frame), int(shard))
    label = f"{experiment}:{int(frame)}:{int(shard)}"
    delays, failures = slow(environ), failing(environ)  # both parsed first: bad values fail every shard
    if me in delays:
        # tests/slurm/test_slurm.py waits for this line in the shard's log.
        log.info("test fault injection: sleeping %s s (%s)", delays[me], SLOW)
        sleep(delays[me])
    if me in failures:
        raise RuntimeError(f"test fault injection: shard {label} fails ({FAIL})")
