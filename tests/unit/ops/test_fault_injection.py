"""trainability.ops.faults: the test-only failures and delays of shard jobs, without Snakemake."""

import pytest

from trainability.ops import faults


class Clock:
    """An injected sleep that records what it was asked for."""

    def __init__(self):
        self.slept = []

    def __call__(self, seconds):
        self.slept.append(seconds)


def test_unset_or_empty_variables_do_nothing():
    clock = Clock()
    faults.inject("tanh", 0, 3, environ={}, sleep=clock)
    faults.inject("tanh", "0", "3", environ={faults.FAIL: "", faults.SLOW: " , "}, sleep=clock)
    assert clock.slept == []


def test_a_listed_shard_fails_naming_itself_and_the_variable():
    environ = {faults.FAIL: "relu:1:0, tanh:0:3"}
    with pytest.raises(
        RuntimeError,
        match=r"test fault injection: shard tanh:0:3 fails "
        r"\(TRAINABILITY_TEST_FAIL_SHARDS\)",
    ):
        faults.inject("tanh", "0", "3", environ=environ, sleep=Clock())


def test_a_listed_shard_sleeps_the_given_seconds(caplog):
    clock = Clock()
    with caplog.at_level("INFO", logger="trainability.ops.faults"):
        faults.inject("tanh", 0, 2, environ={faults.SLOW: "tanh:0:2=1.5,relu:0:2=9"}, sleep=clock)
    assert clock.slept == [1.5]
    assert "test fault injection: sleeping 1.5 s" in caplog.text  # what test_slurm.py waits for


def test_slow_then_failing():
    clock = Clock()
    environ = {faults.SLOW: "tanh:0:2=4", faults.FAIL: "tanh:0:2"}
    with pytest.raises(RuntimeError, match="shard tanh:0:2 fails"):
        faults.inject("tanh", 0, 2, environ=environ, sleep=clock)
    assert clock.slept == [4.0]


def test_other_shards_are_left_alone():
    clock = Clock()
    environ = {faults.SLOW: "tanh:0:2=5", faults.FAIL: "tanh:0:2,tanh_small:0:1"}
    for experiment, frame, shard in (("tanh", 0, 1), ("tanh", 1, 2), ("tanh_small", 0, 2), ("tan", 0, 2)):
        faults.inject(experiment, frame, shard, environ=environ, sleep=clock)
    assert clock.slept == []


@pytest.mark.parametrize(
    "variable, value",
    [
        (faults.FAIL, "tanh:0"),
        (faults.FAIL, "tanh:zero:1"),
        (faults.FAIL, "tanh:0:1=3"),
        (faults.SLOW, "tanh:0:1"),
        (faults.SLOW, "tanh:0:1=soon"),
        (faults.SLOW, "tanh:0:1=-2"),
        (faults.SLOW, "tanh:0:1=nan"),
        (faults.SLOW, "tanh:x:1=2"),
    ],
)
def test_malformed_values_are_an_error_naming_the_variable(variable, value):
    clock = Clock()
    with pytest.raises(ValueError, match=variable) as err:
        faults.inject("other", 0, 0, environ={variable: value}, sleep=clock)
    assert repr(value) in str(err.value)
    assert clock.slept == []
