"""The caps on a frame's shards (config `limits`): refused before anything is planned, with numbers."""

import copy
import time

import pytest

from config_helpers import GOOD, problems_of, with_change
from trainability.config import LIMITS, validate_config
from trainability.contract.grid import MAX_FRAMES


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


@pytest.mark.parametrize("resolution", [20_000_000, 10**11])
def test_a_grid_far_beyond_the_caps_answers_at_once(resolution):
    """2e7 took 32 s (the depth of the sequence, R values per axis per frame); 1e11 ended in a
    MemoryError: the caps come before anything that grows with the resolution."""
    config = with_change("grid", {"resolution": resolution, "shard_size": 1024})
    began = time.monotonic()
    message = problems_of(config)
    assert time.monotonic() - began < 5
    assert f"experiments.exp.grid.resolution: {resolution}^2 = {resolution**2} pixels" in message
    assert "allowed: a resolution up to 262144" in message


def test_the_largest_grid_within_the_caps_validates_in_seconds():
    """262144 = sqrt(4096 shards x 4096^2 pixels) took 51 s to count its frames."""
    config = with_change("grid", {"resolution": 262144, "shard_size": 4096 * 4096})
    config = with_change("phase_space.x", [-3.0, 6.0], with_change("phase_space.y", [-3.0, 6.0], config))
    began = time.monotonic()
    validate_config(with_change("zoom", {"frames": "max", "factor": 2}, config))
    assert time.monotonic() - began < 20


def test_frames_max_with_a_factor_near_one_is_refused_naming_a_factor_that_works():
    """factor 1.0000001 with frames: max silently planned 2000 frames (8.7e-5 decades)."""
    message = problems_of(with_change("zoom", {"frames": "max", "factor": 1.0000001}))
    assert message.startswith("experiments.exp.zoom.factor: 1.0000001 is too close to 1"), message
    assert f"a sequence has at most {MAX_FRAMES} frames" in message
    smallest = float(message.split("allowed: a factor of at least ")[1].split(",")[0])
    assert f"or frames: 1..{MAX_FRAMES}" in message
    # the factor it names reaches the float64 limit within the cap, and a bit less does not
    deepest = validate_config(with_change("zoom", {"frames": "max", "factor": smallest}))["exp"]["zoom"]
    assert 1 < deepest["frames"] <= MAX_FRAMES
    assert "too close to 1" in problems_of(with_change("zoom", {"frames": "max", "factor": smallest - 0.003}))


def test_an_automatic_centre_with_a_factor_near_one_is_refused_whatever_frames_says():
    """The search descends to the float64 limit: 2000 levels at 1.0000001, even for 10 frames."""
    message = problems_of(with_change("zoom", {"frames": 10, "factor": 1.0000001, "centre": "auto"}))
    assert "experiments.exp.zoom.factor: 1.0000001 is too close to 1" in message
    assert "the automatic centre's search descends to it" in message and "or frames:" not in message


def test_frames_beyond_the_cap_are_refused_and_a_given_centre_may_zoom_slowly():
    """With a factor near 1 the float64 limit lies beyond the cap: the cap is what a number of
    frames meets (without it, 2000 frames of 8.7e-5 decades were planned)."""
    zoom = {"frames": MAX_FRAMES + 44, "factor": 1.01, "centre": [0.0, 0.0]}
    message = problems_of(with_change("zoom", zoom))
    assert message == (
        f"experiments.exp.zoom.frames: {MAX_FRAMES + 44} frames are more than a sequence may have "
        f"(trainability.contract.grid.MAX_FRAMES = {MAX_FRAMES}); allowed: 1..{MAX_FRAMES}"
    )
    slow = validate_config(with_change("zoom", {"frames": 10, "factor": 1.0000001}))["exp"]["zoom"]
    assert slow["frames"] == 10
    # Where the dtype runs out first, its limit is what a number of frames meets.
    assert "frames are too many" in problems_of(with_change("zoom", {"frames": MAX_FRAMES + 44, "factor": 2}))


def test_an_infinite_factor_is_named_without_nan():
    message = problems_of(with_change("zoom", {"frames": 4, "factor": float("inf")}))
    assert "experiments.exp.zoom.factor: inf is not a finite number; allowed: a finite number > 1" in message
    assert "nan" not in message


def double_double(zoom):
    config = with_change("zoom", zoom)
    config["experiments"]["exp"]["training"]["dtype"] = "float64x2"
    return config


def test_double_double_resolves_twice_as_deep_and_keeps_a_centre_s_digits():
    # x, y in [-1, 1], 8 pixels: float64 stops near 15 decades, double-double near 31.
    f64 = validate_config(with_change("zoom", {"frames": "max", "factor": 10}))["exp"]["zoom"]
    dd = validate_config(double_double({"frames": "max", "factor": 10}))["exp"]["zoom"]
    assert 14 <= f64["frames"] <= 16 and 30 <= dd["frames"] <= 32
    centre = ["0.12345678901234567890123456789", "-0.5"]
    resolved = validate_config(double_double({"frames": 25, "factor": 10, "centre": centre}))["exp"]
    assert resolved["zoom"]["centre"] == centre  # every digit kept
    # float64 would lose the digits: refused, naming the field and the ways out.
    message = problems_of(with_change("zoom", {"frames": 3, "factor": 10, "centre": centre}))
    assert (
        "experiments.exp.zoom.centre: x = '0.12345678901234567890123456789' has more significant" in message
    )
    assert "allowed: training.dtype float64x2, or at most 17 digits" in message
    assert "is not valid" in problems_of(double_double({"frames": 3, "factor": 10, "centre": ["1.5x", "0"]}))


def test_frames_past_each_dtype_s_limit_say_what_resolves_deeper():
    f64 = problems_of(with_change("zoom", {"frames": 20, "factor": 10}))
    assert "frames are too many" in f64 and "(float64x2, double-double, resolves about twice as deep)" in f64
    dd = problems_of(double_double({"frames": 40, "factor": 10}))
    assert "at 8 pixels in float64x2" in dd and "resolves" not in dd.split("allowed:")[1]
