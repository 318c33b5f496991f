"""training.train_points: each phase space's y axis reaches the kernel as the field it names
(phase_space.Y_FIELDS), for the network and the 1-D control, compared with direct calls."""

import numpy as np
import pytest
import torch

from kernel_helpers import make_problem
from trainability import training
from trainability.contract import optimizers
from trainability.kernels import dispatch, quadratic_cosine

CPU = torch.device("cpu")
X = np.array([0.05, 0.2, 0.5, 0.9])
Y = np.array([0.3, 0.6, 0.9, 0.97])


def mlp_settings(kind, **training_fields):
    return {
        "model": {"width": 6, "depth": 2, "nonlinearity": "tanh"},
        "data": {"size": 9, "target_dim": 1, "seed": 0},
        "training": {"steps": 20, "batch": "full", "dtype": "float64", **training_fields},
        "phase_space": {"kind": kind, "offset_mode": "every_step"},
    }


@pytest.mark.parametrize(
    "kind,optimizer,field",
    [("lr_vs_beta", "momentum", "beta"), ("lr_vs_beta1", "adam", "beta1"), ("lr_vs_beta2", "adam", "beta2")],
)
def test_an_optimizer_axis_sets_that_hyperparameter_per_pixel(kind, optimizer, field):
    problem = make_problem()
    settings = mlp_settings(kind, optimizer=optimizer)
    got = training.train_points(problem, settings, X, Y, device=CPU, kernel="torch")
    params = optimizers.pixel_parameters(optimizer, {}, len(X))
    params[field] = Y
    lrs = np.stack([X, X], axis=1)  # x: the learning rate of every layer
    expected = dispatch.train_pixels(
        problem,
        lrs,
        None,
        nonlinearity="tanh",
        steps=20,
        device=CPU,
        kernel="torch",
        optimizer=optimizer,
        optimizer_params=params,
    )
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    fixed = training.train_points(
        problem,
        {**settings, "phase_space": {**settings["phase_space"], "kind": "lr_vs_lr"}},
        X,
        X,
        device=CPU,
        kernel="torch",
    )
    assert not np.array_equal(fixed["sum_u"], got["sum_u"])  # the axis matters


@pytest.mark.parametrize("kind,axis", [("lr_vs_amplitude", "amplitude"), ("lr_vs_wavelength", "wavelength")])
def test_the_one_dimensional_axes_set_amplitude_or_wavelength(kind, axis):
    model = {
        "kind": "quadratic_cosine",
        "form": "additive",
        "start": 1.0,
        "amplitude": 0.2,
        "wavelength": 0.1,
    }
    del model[axis]
    settings = {"model": model, "training": {"steps": 200, "dtype": "float64"}, "phase_space": {"kind": kind}}
    values = np.array([0.01, 0.05, 0.2, 0.3])
    got = training.train_points(None, settings, X + 0.6, values, device=CPU, kernel="auto")
    amplitude = values if axis == "amplitude" else np.full(4, 0.2)
    wavelength = values if axis == "wavelength" else np.full(4, 0.1)
    expected = quadratic_cosine.train(X + 0.6, amplitude, wavelength, form="additive", steps=200)
    for name, v in expected.items():
        np.testing.assert_array_equal(got[name], v, err_msg=name)
    labels = training.trainable_labels(settings, got)
    np.testing.assert_array_equal(labels, expected["diverged_step"] < 0)  # Liu's criterion
