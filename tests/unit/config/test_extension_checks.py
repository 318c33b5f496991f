"""Config fields beyond the paper: optimisers, per-pixel randomness, the 1-D control, the
estimators. Every bad input is one error naming the field and what is allowed, before any job."""

import copy
import math

import numpy as np
import pytest

from config_helpers import DELETE, GOOD, problems_of, with_change
from trainability.boundary import uncertainty
from trainability.config import validate_config
from workflow_helpers import REPO

LIU = {
    "experiments": {
        "exp": {
            "model": {"kind": "quadratic_cosine", "wavelength": 0.1},
            "training": {"steps": 100},
            "phase_space": {"kind": "lr_vs_amplitude", "x": [-1, 0.17], "y": [-4, -0.5]},
            "grid": {"resolution": 8, "shard_size": 64},
        }
    }
}


def resolved(config):
    return validate_config(copy.deepcopy(config))["exp"]


def test_gd_is_the_default_and_resolves_as_before():
    """An experiment that does not name an optimiser, or names gd, resolves exactly as one
    from before optimisers existed: its training section (the shards' rerun key) is unchanged."""
    plain = resolved(GOOD)
    named = resolved(with_change("training.optimizer", "gd"))
    assert plain["training"] == named["training"] == {"steps": 10, "batch": "full", "dtype": "float64"}


def test_optimizer_defaults_are_filled_except_on_the_axis():
    assert resolved(with_change("training.optimizer", "momentum"))["training"]["beta"] == 0.9
    adam = resolved(with_change("training.optimizer", "adam"))["training"]
    assert (adam["beta1"], adam["beta2"], adam["eps"]) == (0.9, 0.999, 1e-8)
    on_axis = with_change("training.optimizer", "momentum")
    on_axis["experiments"]["exp"]["phase_space"] = {"kind": "lr_vs_beta", "x": [-1, 1], "y": [-1, -0.01]}
    assert "beta" not in resolved(on_axis)["training"]


@pytest.mark.parametrize(
    "changes,expected",
    [
        (
            {"training.optimizer": "rmsprop"},
            "experiments.exp.training.optimizer: 'rmsprop' is not one of ['gd', 'momentum', 'adam']",
        ),
        (
            {"training.optimizer": "momentum", "training.beta": 1.0},
            "experiments.exp.training.beta: 1.0 is outside the allowed range; allowed: 0 <= beta < 1",
        ),
        (
            {"training.optimizer": "momentum", "training.beta": -0.1},
            "experiments.exp.training.beta: -0.1 is outside the allowed range; allowed: 0 <= beta < 1",
        ),
        (
            {"training.optimizer": "adam", "training.beta2": 1.5},
            "experiments.exp.training.beta2: 1.5 is outside the allowed range; allowed: 0 <= beta2 < 1",
        ),
        (
            {"training.optimizer": "adam", "training.eps": 0.0},
            "experiments.exp.training.eps: 0.0 is outside the allowed range; allowed: eps > 0",
        ),
        (
            {"training.optimizer": "adam", "training.eps": -1e-8},
            "experiments.exp.training.eps: -1e-08 is outside the allowed range; allowed: eps > 0",
        ),
        (
            {"training.beta": 0.5},
            "experiments.exp.training.beta: a hyperparameter of momentum, not of gd "
            "(training.optimizer); gd takes none",
        ),
        (
            {"training.optimizer": "momentum", "training.eps": 1e-3},
            "experiments.exp.training.eps: a hyperparameter of adam, not of momentum "
            "(training.optimizer); momentum takes: beta",
        ),
    ],
)
def test_bad_optimizer_settings_are_named(changes, expected):
    config = GOOD
    for path, value in changes.items():
        config = with_change(path, value, config)
    assert expected in problems_of(config)


@pytest.mark.parametrize(
    "optimizer,kind,expected",
    [
        (
            "gd",
            "lr_vs_beta",
            "experiments.exp.phase_space.kind: 'lr_vs_beta' puts training.beta on the y axis, "
            "but optimizer gd (training.optimizer) has no beta; allowed with gd: ['lr_vs_lr', "
            "'paraminit_vs_lr']",
        ),
        (
            "adam",
            "lr_vs_beta",
            "'lr_vs_beta' puts training.beta on the y axis, but optimizer adam "
            "(training.optimizer) has no beta; allowed with adam: ['lr_vs_beta1', 'lr_vs_beta2', "
            "'lr_vs_eps', 'lr_vs_lr', 'paraminit_vs_lr']",
        ),
        (
            "momentum",
            "lr_vs_eps",
            "'lr_vs_eps' puts training.eps on the y axis, but optimizer momentum "
            "(training.optimizer) has no eps; allowed with momentum: ['lr_vs_beta', 'lr_vs_lr', "
            "'paraminit_vs_lr']",
        ),
    ],
)
def test_a_hyperparameter_on_an_axis_the_optimizer_lacks_is_named(optimizer, kind, expected):
    config = with_change("training.optimizer", optimizer)
    config = with_change("phase_space", {"kind": kind, "x": [-1, 1], "y": [-2, -0.5]}, config)
    assert expected in problems_of(config)


def test_beta_on_an_axis_must_stay_below_one_and_not_be_given_twice():
    config = with_change("training.optimizer", "momentum")
    config = with_change("phase_space", {"kind": "lr_vs_beta", "x": [-1, 1], "y": [-1, 0.1]}, config)
    assert (
        "experiments.exp.phase_space.y: [-1, 0.1] gives beta = 10**y up to 1.259; allowed: 0 <= "
        "beta < 1, i.e. y bounds below 0" in problems_of(config)
    )
    config = with_change("phase_space.y", [-1, -0.1], config)
    config = with_change("training.beta", 0.5, config)
    assert (
        "experiments.exp.training.beta: given, but phase_space.kind 'lr_vs_beta' puts it on the "
        "y axis; allowed: one of the two" in problems_of(config)
    )


def test_per_pixel_randomness_with_files_that_fix_the_draw_is_refused():
    config = with_change("model.width", 16)
    config = with_change("data", {"init_file": "resources/author_init/author_init_N16.npz"}, config)
    assert validate_config(copy.deepcopy(config), REPO)
    config = with_change("data.per_pixel", ["weights", "data"], config)
    message = problems_of(config, REPO)
    for kind in ("weights", "data"):
        assert (
            f"experiments.exp.data.per_pixel: {kind!r} with data.init_file, which fixes the draw; "
            f"allowed: per-pixel {kind} with generated data (data.size, data.seed), or no init_file"
        ) in message
    minibatch = with_change("data.per_pixel", ["minibatch"])
    assert "experiments.exp.data.per_pixel: 'minibatch' but training.batch is 'full'" in problems_of(
        minibatch
    )
    unknown = with_change("data.per_pixel", ["labels"])
    assert (
        "experiments.exp.data.per_pixel.0: 'labels' is not one of ['weights', 'data', 'minibatch']"
        in problems_of(unknown)
    )
    auto = with_change("zoom", {"centre": "auto"}, with_change("data.per_pixel", ["weights"]))
    assert "experiments.exp.data.per_pixel: not with zoom.centre auto" in problems_of(auto)
    assert resolved(with_change("data.per_pixel", ["weights"]))["data"]["per_pixel"] == ["weights"]


def test_the_one_dimensional_control_resolves_with_its_defaults():
    exp = resolved(LIU)
    assert exp["model"] == {"kind": "quadratic_cosine", "wavelength": 0.1, "form": "additive", "start": 1.0}
    assert "size" not in exp["data"]


@pytest.mark.parametrize(
    "path,value,expected",
    [
        (
            "model.width",
            16,
            "experiments.exp.model.width: a field of the mlp model, not of quadratic_cosine "
            "(model.kind); quadratic_cosine fields: form, amplitude, wavelength, start",
        ),
        (
            "model.wavelength",
            DELETE,
            "experiments.exp.model.wavelength: required by the quadratic_cosine model",
        ),
        ("model.wavelength", 0.0, "experiments.exp.model.wavelength: 0.0; allowed: wavelength > 0"),
        (
            "model.amplitude",
            0.2,
            "experiments.exp.model.amplitude: given, but phase_space.kind 'lr_vs_amplitude' puts "
            "it on the y axis; allowed: one of the two",
        ),
        (
            "model.form",
            "cubic",
            "experiments.exp.model.form: 'cubic' is not one of ['additive', 'multiplicative']",
        ),
        (
            "training.dtype",
            "float32",
            "experiments.exp.training.dtype: the quadratic_cosine model trains in float64; allowed: float64",
        ),
        (
            "data",
            {"size": 10},
            "experiments.exp.data.size: the quadratic_cosine model has no data; remove it",
        ),
        (
            "phase_space.kind",
            "lr_vs_lr",
            "experiments.exp.phase_space.kind: 'lr_vs_lr' does not apply to the quadratic_cosine "
            "model; allowed: ['lr_vs_beta', 'lr_vs_beta1', 'lr_vs_beta2', 'lr_vs_eps', "
            "'lr_vs_amplitude', 'lr_vs_wavelength']",
        ),
        (
            "line",
            {"y": 1.0},
            "experiments.exp.line.y: 1.0 lies outside the window [-4, -0.5] of phase_space.y; "
            "allowed: inside it",
        ),
    ],
)
def test_bad_one_dimensional_settings_are_named(path, value, expected):
    assert expected in problems_of(with_change(path, value, LIU))


def test_the_multiplicative_form_keeps_the_amplitude_at_most_one():
    config = with_change("model.form", "multiplicative", LIU)
    assert resolved(config)["model"]["form"] == "multiplicative"
    message = problems_of(with_change("phase_space.y", [-4, 0.2], config))
    assert (
        "experiments.exp.phase_space.y: amplitudes up to 1.585; allowed for the multiplicative "
        "form: <= 1, i.e. y bounds <= 0" in message
    )


def test_mlp_phase_spaces_refuse_the_one_dimensional_axes():
    config = with_change("phase_space.kind", "lr_vs_amplitude")
    assert (
        "experiments.exp.phase_space.kind: 'lr_vs_amplitude' does not apply to the mlp model"
        in problems_of(config)
    )


def fits_at_best(n_points):
    """Whether any labels of n_points points give the uncertainty fit a dimension: the best
    case changes the same k points at two epsilons, for every k."""
    eps, base = np.array([0.1, 0.01]), np.zeros(n_points, dtype=bool)
    for k in range(1, n_points + 1):
        perturbed = np.zeros((2, n_points), dtype=bool)
        perturbed[:, :k] = True
        if math.isfinite(uncertainty.fit(eps, base, perturbed, bootstrap=0).dimension):
            return True
    return False


def test_too_few_uncertainty_points_to_ever_fit_are_refused():
    """points 16..19 passed the schema but could never give a fit."""
    fewest = next(n for n in range(1, 200) if fits_at_best(n))
    assert not any(fits_at_best(n) for n in range(1, fewest))
    message = problems_of(with_change("uncertainty", {"points": fewest - 1}))
    assert message.startswith(f"experiments.exp.uncertainty.points: {fewest - 1} points can never give a fit")
    assert f"allowed: {fewest} or more" in message
    assert resolved(with_change("uncertainty", {"points": fewest}))["uncertainty"]["points"] == fewest
