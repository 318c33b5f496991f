"""Configuration: the shipped configs are valid; every bad input is named before work starts."""

import copy

import numpy as np
import pytest

from config_helpers import DELETE, GOOD, problems_of, with_change
from trainability.config import layered_config, load_config, validate_config
from workflow_helpers import REPO, prepare_workdir


@pytest.mark.parametrize(
    "path",
    [
        "config/config.yaml",
        "config/paper.yaml",
        "config/figure1.yaml",
        "config/zoom.yaml",
        "config/deep_zoom.yaml",
        "config/paper_deep.yaml",
        "tests/configs/tiny.yaml",
    ],
)
def test_shipped_configs_are_valid(path, tmp_path):
    workdir = REPO
    if path.startswith("tests"):
        workdir = prepare_workdir(tmp_path)
    config = layered_config(load_config(REPO / path), workdir)
    resolved = validate_config(config, workdir)
    assert set(resolved) == set(config["experiments"])


def test_default_config_holds_the_six_paper_conditions_and_the_1d_control():
    resolved = validate_config(load_config(REPO / "config/config.yaml"), REPO)
    control = resolved.pop("liu_control")
    dims = sorted(exp["paper_dimension"] for exp in resolved.values())
    assert dims == [1.17, 1.20, 1.41, 1.55, 1.66, 1.98]
    kinds = {exp["phase_space"]["kind"] for exp in resolved.values()}
    assert kinds == {"lr_vs_lr", "paraminit_vs_lr"}
    # Liu's setting: x0 = 1, 1000 float64 steps, wavelength 0.1; the window spans the
    # convexity threshold eps = lambda^2 / (2 pi^2), the line is eps = 0.2.
    assert control["model"] == {
        "kind": "quadratic_cosine",
        "form": "additive",
        "wavelength": 0.1,
        "start": 1.0,
    }
    assert control["training"]["steps"] == 1000 and control["training"]["dtype"] == "float64"
    lo, hi = control["phase_space"]["y"]
    assert lo < np.log10(0.1**2 / (2 * np.pi**2)) < np.log10(0.2) < hi
    assert 10 ** control["line"]["y"] == pytest.approx(0.2)


@pytest.mark.parametrize("path", ["config/paper.yaml", "config/figure1.yaml"])
def test_paper_configs_are_4096_squared(path):
    resolved = validate_config(layered_config(load_config(REPO / path), REPO), REPO)
    assert len(resolved) == 6  # the paper's conditions; the default run's 1-D control left out
    assert {exp["grid"]["resolution"] for exp in resolved.values()} == {4096}


def test_the_zoom_demo_reaches_ten_decades_with_automatic_centres():
    resolved = validate_config(load_config(REPO / "config/zoom.yaml"), REPO)
    assert {exp["paper_dimension"] for exp in resolved.values()} >= {1.17, 1.41}
    for exp in resolved.values():
        zoom = exp["zoom"]
        assert zoom["centre"] == "auto"
        assert (zoom["frames"] - 1) * np.log10(zoom["factor"]) >= 10


def test_good_config_resolves_dataset_size():
    resolved = validate_config(GOOD)
    assert resolved["exp"]["data"]["size"] == 4 * 4 + 4  # "params" = number of parameters


@pytest.mark.parametrize(
    "path,value,expected",
    [
        (
            "model.nonlinearity",
            "sigmoid",
            "experiments.exp.model.nonlinearity: 'sigmoid' is not one of ['tanh', 'relu', 'identity']",
        ),
        ("grid.resolution", 0, "experiments.exp.grid.resolution: 0 is less than the minimum of 2"),
        ("grid.resolution", -5, "experiments.exp.grid.resolution: -5 is less than the minimum of 2"),
        ("grid.shard_size", 0, "experiments.exp.grid.shard_size: 0 is less than the minimum of 1"),
        ("grid.shard_size", -1, "experiments.exp.grid.shard_size: -1 is less than the minimum of 1"),
        ("model.depth", 1, "experiments.exp.model.depth: 1 is less than the minimum of 2"),
        (
            "training.dtype",
            "float16",
            "experiments.exp.training.dtype: 'float16' is not one of ['float64', 'float32', 'float64x2']",
        ),
        (
            "phase_space.kind",
            "lr_vs_momentum",
            "experiments.exp.phase_space.kind: 'lr_vs_momentum' is not one of",
        ),
        (
            "phase_space.offset_mode",
            "twice",
            "experiments.exp.phase_space.offset_mode: 'twice' is not one of ['every_step', 'init_only']",
        ),
        ("data.size", "lots", "experiments.exp.data.size: 'lots' is not valid; allowed:"),
        ("training.batch", "half", "experiments.exp.training.batch: 'half' is not valid; allowed:"),
        (
            "phase_space.x",
            [1, 1],
            "experiments.exp.phase_space.x: bounds must be finite with min < max, got [1, 1]",
        ),
        (
            "phase_space.y",
            [2, -1],
            "experiments.exp.phase_space.y: bounds must be finite with min < max, got [2, -1]",
        ),
        (
            "grid.colour",
            "red",
            "experiments.exp.grid: Additional properties are not allowed ('colour' was unexpected)",
        ),
        ("model", DELETE, "experiments.exp: 'model' is a required property"),
    ],
)
def test_bad_values_are_named(path, value, expected):
    assert expected in problems_of(with_change(path, value))


def test_unknown_kernel_is_named():
    config = copy.deepcopy(GOOD) | {"kernel": "cuda-magic"}
    assert "kernel: 'cuda-magic' is not one of ['auto', 'torch', 'fused']" in problems_of(config)


def test_all_problems_are_reported_at_once():
    config = with_change("grid.resolution", 0, with_change("model.nonlinearity", "sigmoid"))
    message = problems_of(config)
    assert "grid.resolution" in message and "model.nonlinearity" in message


def test_float32_window_too_narrow_for_the_grid():
    narrow = with_change("phase_space.x", [1.0, 1.0 + 1e-7], with_change("training.dtype", "float32"))
    narrow["experiments"]["exp"]["grid"]["resolution"] = 64
    message = problems_of(narrow)
    assert "experiments.exp.phase_space.x" in message and "too narrow" in message and "float32" in message
    # The same window is fine in float64.
    narrow["experiments"]["exp"]["training"]["dtype"] = "float64"
    validate_config(narrow)


def test_deep_zoom_frames_are_checked_too():
    config = with_change("zoom", {"frames": 60, "factor": 2})
    message = problems_of(config)
    assert "too narrow" in message and "frame" in message


def deepest_by_hand(width, resolution, centre):
    """Frames k (factor 2) whose pixel spacing is >= 2 ulps of the largest coordinate
    |centre| + half width, and >= 2 float64 eps relative in the values 10**x."""
    k = 0
    while True:
        spacing = (width / 2.0**k) / (resolution - 1)
        ulp = float(np.spacing(np.float64(abs(centre) + width / 2.0 ** (k + 1))))
        if spacing < 2 * ulp or np.log(10) * spacing < 2 * np.finfo(np.float64).eps:
            return k
        k += 1


def test_too_many_frames_is_one_error_that_names_the_maximum():
    # Window [-1, 1] about 0: deep frames hold tiny coordinates, so the values 10**x run out first.
    deepest = deepest_by_hand(2.0, 8, 0.0)
    assert 45 <= deepest <= 55
    message = problems_of(with_change("zoom", {"frames": deepest + 5, "factor": 2}))
    assert "\n" not in message, message  # one problem
    assert "experiments.exp.zoom.frames" in message and f"has {deepest} frames" in message
    assert f"allowed: 1..{deepest} or max" in message
    assert "use dtype float64" not in message  # it is float64 already
    validate_config(with_change("zoom", {"frames": deepest, "factor": 2}))


def test_frames_max_is_as_deep_as_the_dtype_resolves():
    resolved = validate_config(with_change("zoom", {"frames": "max", "factor": 2}))
    assert resolved["exp"]["zoom"]["frames"] == deepest_by_hand(2.0, 8, 0.0)
    # float32 values run out long before float64 coordinates: relative eps 1.2e-7.
    shallow = validate_config(
        with_change("zoom", {"frames": "max", "factor": 2}, with_change("training.dtype", "float32"))
    )
    expected = max(k for k in range(60) if np.log(10) * (2.0 / 2**k) / 7 >= 2 * np.finfo(np.float32).eps) + 1
    assert shallow["exp"]["zoom"]["frames"] == expected
    message = problems_of(
        with_change("zoom", {"frames": expected + 1}, with_change("training.dtype", "float32"))
    )
    assert "float64 resolves deeper" in message


def test_an_automatic_centre_bounds_the_depth_by_the_central_half():
    # Centre anywhere in the central half of [-3, 6]: the worst case is the largest, 3.75.
    config = with_change("phase_space.x", [-3.0, 6.0], with_change("phase_space.y", [-3.0, 6.0]))
    config = with_change("zoom", {"frames": "max", "centre": "auto"}, config)
    resolved = validate_config(config)["exp"]["zoom"]
    assert resolved["frames"] == deepest_by_hand(9.0, 8, 3.75)
    assert resolved["pilot_resolution"] == 8  # capped at the frame resolution


@pytest.mark.parametrize(
    "zoom,field,allowed",
    [
        ({"frames": 2, "centre": [5.0, 0.0]}, "zoom.centre", "inside the window"),
        ({"frames": 2, "factor": 1.0}, "zoom.factor", "minimum of 1"),
        ({"frames": 0}, "zoom.frames", "max"),
        ({"frames": "deep"}, "zoom.frames", "max"),
        ({"frames": 2, "centre": "middle"}, "zoom.centre", "auto"),
        ({"frames": 2, "centre": "auto", "pilot_resolution": 2}, "zoom.pilot_resolution", "minimum"),
        # silently clamped to the resolution, or silently ignored without an automatic centre
        (
            {"frames": 2, "centre": "auto", "pilot_resolution": 16},
            "zoom.pilot_resolution",
            "allowed: up to 8",
        ),
        ({"frames": 2, "pilot_resolution": 8}, "zoom.pilot_resolution", "or zoom.centre: auto"),
    ],
)
def test_bad_zoom_settings_are_named(zoom, field, allowed):
    message = problems_of(with_change("zoom", zoom))
    assert f"experiments.exp.{field}" in message and allowed in message, message


def init_config(tmp_path, arrays):
    np.savez(tmp_path / "init.npz", **arrays)
    return with_change("data", {"init_file": "init.npz"})


def good_arrays(n=5):
    rng = np.random.default_rng(0)
    return {
        "W0": rng.standard_normal((4, 4)),
        "W1": rng.standard_normal((4, 1)),
        "X": rng.standard_normal((n, 4)),
        "Y": rng.standard_normal((n, 1)),
    }


def test_init_file_accepted(tmp_path):
    validate_config(init_config(tmp_path, good_arrays()), tmp_path)


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda a: a.pop("W1"), "lacks arrays ['W1']"),
        (lambda a: a.update(W0=np.ones((4, 3))), "W0 has shape (4, 3), expected (4, 4)"),
        (lambda a: a.update(X=np.ones((5, 3))), "X has shape (5, 3), expected (N, 4)"),
        (lambda a: a.update(Y=np.ones((4, 1))), "Y has shape (4, 1), expected (5, 1)"),
        (lambda a: a["W1"].__setitem__((0, 0), np.nan), "W1 contains NaN or infinite values"),
        (lambda a: a["X"].__setitem__((1, 1), np.inf), "X contains NaN or infinite values"),
    ],
)
def test_malformed_init_file(tmp_path, mutate, expected):
    arrays = good_arrays()
    mutate(arrays)
    message = problems_of(init_config(tmp_path, arrays), tmp_path)
    assert "experiments.exp.data.init_file" in message and expected in message


def test_missing_and_unreadable_init_file(tmp_path):
    config = with_change("data", {"init_file": "nowhere.npz"})
    assert "experiments.exp.data.init_file: file not found" in problems_of(config, tmp_path)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    config = with_change("data", {"init_file": "garbage.npz"})
    assert "cannot read" in problems_of(config, tmp_path)


def test_bad_minibatch_file(tmp_path):
    np.save(tmp_path / "mb.npy", np.full((10, 3), 99))
    config = with_change("training", {"steps": 10, "batch": 3, "minibatch_file": "mb.npy"})
    message = problems_of(config, tmp_path)
    assert "experiments.exp.training.minibatch_file" in message and "indices must lie in [0, 20)" in message


@pytest.mark.parametrize(
    "path,value",
    [
        ("grid.resolution", 12.0),
        ("training.steps", 30.0),
        ("model.width", 4.0),
        ("training.batch", 3.0),
        ("zoom.frames", 2.0),
    ],
)
def test_an_integer_field_refuses_a_float_naming_the_field(path, value):
    config = with_change(path, value)
    if path == "zoom.frames":
        config = with_change("zoom", {"frames": value})
    message = problems_of(config)
    assert f"experiments.exp.{path}" in message, message


@pytest.mark.parametrize(
    "change,field,allowed",
    [
        ({"training": {"steps": 10, "batch": 3, "minibatch_seed": 1}}, None, None),  # fine: 3 <= 20 points
        (
            {"training": {"steps": 10, "batch": 21, "minibatch_seed": 1}},
            "training.batch",
            "allowed: 1..20 or full",
        ),
        ({"training": {"steps": 10, "minibatch_seed": 1}}, "training.minibatch_seed", "batch is 'full'"),
        (
            {"phase_space": {"kind": "lr_vs_lr", "x": [300, 400], "y": [-1, 1]}},
            "phase_space.x",
            "between -308",
        ),
        (
            {
                "training": {"steps": 10, "dtype": "float32"},
                "phase_space": {"kind": "lr_vs_lr", "x": [30, 40], "y": [-1, 1]},
            },
            "phase_space.x",
            "between -38",
        ),
    ],
)
def test_values_that_used_to_pass_silently(change, field, allowed, recwarn):
    config = copy.deepcopy(GOOD)
    config["experiments"]["exp"].update(change)
    if field is None:
        validate_config(config)
        return
    message = problems_of(config)
    assert f"experiments.exp.{field}" in message and allowed in message, message
    assert not [w for w in recwarn if "overflow" in str(w.message)], "no numpy overflow warnings"


def test_size_with_an_init_file_is_refused(tmp_path):
    config = init_config(tmp_path, good_arrays())
    config["experiments"]["exp"]["data"]["size"] = 7
    message = problems_of(config, tmp_path)
    assert "experiments.exp.data.size: given with data.init_file" in message
