"""The caps on a frame's shards (config `limits`): refused before anything is planned, with numbers."""

import copy
import time

import pytest

from test_config import GOOD, problems_of, with_change
from trainability.config import LIMITS, validate_config


@pytest.mark.parametrize(
    "resolution,shard_size,field,expected",
    [
        # 1.4e10 shards: the planner used to hang for minutes.
        (1000000, 72, "grid.resolution", "allowed: a resolution up to 262144, or raise those limits"),
        # 16.7M shards: 90 s and 2.8 GB just to plan.
        (
            4096,
            1,
            "grid.shard_size",
            "1 makes 16777216 shards per frame (4096^2 pixels), more than "
            "limits.max_shards_per_frame = 4096; allowed: shard_size from 4096 to 16777216",
        ),
        (
            8192,
            2**25,
            "grid.shard_size",
            "33554432 pixels per shard are more than "
            "limits.max_pixels_per_shard = 16777216; allowed: shard_size from 16384 to 16777216",
        ),
    ],
)
def test_grids_beyond_the_caps_are_refused_at_once(resolution, shard_size, field, expected):
    config = with_change("grid", {"resolution": resolution, "shard_size": shard_size})
    began = time.monotonic()
    message = problems_of(config)
    assert time.monotonic() - began < 5, "refused before any shard is enumerated"
    assert f"experiments.exp.{field}: " in message and expected in message, message


def test_the_caps_can_be_raised_in_the_config():
    config = with_change("grid", {"resolution": 4096, "shard_size": 1024})  # 16384 shards
    assert "max_shards_per_frame = 4096" in problems_of(config)
    config["limits"] = {"max_shards_per_frame": 16384}
    assert validate_config(config)["exp"]["grid"]["shard_size"] == 1024
    assert LIMITS["max_shards_per_frame"] == 4096, "the default is untouched"


def test_a_shard_bigger_than_the_frame_is_one_shard_of_the_frame():
    """shard_size beyond the pixel count makes one shard of the frame's pixels: within the caps."""
    config = with_change("grid", {"resolution": 64, "shard_size": 2**30})
    assert validate_config(config)["exp"]["grid"]["shard_size"] == 2**30


@pytest.mark.parametrize(
    "limits,expected",
    [
        ({"max_shards_per_frame": 0}, "limits.max_shards_per_frame: 0 is less than the minimum of 1"),
        ({"max_pixels_per_shard": 1.5}, "limits.max_pixels_per_shard: 1.5 is not of type 'integer'"),
        ({"max_jobs": 3}, "allowed fields: ['max_pixels_per_shard', 'max_shards_per_frame']"),
    ],
)
def test_bad_limits_are_named(limits, expected):
    config = copy.deepcopy(GOOD)
    config["limits"] = limits
    message = problems_of(config)
    assert expected in message, message
