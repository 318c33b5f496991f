"""What the two axes of each phase space are, and the per-pixel settings they give.

Grid coordinates are log10 units; a pixel at (x, y) trains with the values 10**x, 10**y:

==================  ==================================  ====================================  ================
kind                x                                   y                                     model
==================  ==================================  ====================================  ================
lr_vs_lr            learning rate of even layers        learning rate of odd layers           mlp
                    (the input layer)                   (the output layer of 2-layer nets)
paraminit_vs_lr     offset added to W_0                 learning rate of every layer          mlp
lr_vs_beta          learning rate (every layer)         momentum's beta (training.beta)       mlp, 1-D
lr_vs_beta1         learning rate                       Adam's beta1                          mlp, 1-D
lr_vs_beta2         learning rate                       Adam's beta2                          mlp, 1-D
lr_vs_eps           learning rate                       Adam's eps                            mlp, 1-D
lr_vs_amplitude     learning rate                       amplitude of f (model.amplitude)      1-D
lr_vs_wavelength    learning rate                       wavelength of f (model.wavelength)    1-D
==================  ==================================  ====================================  ================

(1-D: the quadratic_cosine model, ``trainability.kernels.quadratic_cosine``.) The field on the
y axis takes the place of the experiment's fixed value of it.
"""

from __future__ import annotations

import numpy as np

from trainability.contract import optimizers, problem

# kind -> (section, field) that the y axis sets; the lr-vs-lr kinds set none.
Y_FIELDS = {
    "lr_vs_beta": ("training", "beta"),
    "lr_vs_beta1": ("training", "beta1"),
    "lr_vs_beta2": ("training", "beta2"),
    "lr_vs_eps": ("training", "eps"),
    "lr_vs_amplitude": ("model", "amplitude"),
    "lr_vs_wavelength": ("model", "wavelength"),
}
KINDS = ("lr_vs_lr", "paraminit_vs_lr", *Y_FIELDS)
# The model kinds each phase space applies to.
MODELS = {
    "lr_vs_lr": ("mlp",),
    "paraminit_vs_lr": ("mlp",),
    **{kind: ("mlp", "quadratic_cosine") for kind, (section, _) in Y_FIELDS.items() if section == "training"},
    "lr_vs_amplitude": ("quadratic_cosine",),
    "lr_vs_wavelength": ("quadratic_cosine",),
}


def axis_field(kind: str) -> str | None:
    """The field the y axis sets (beta, beta1, beta2, eps, amplitude, wavelength), or None."""
    return Y_FIELDS.get(kind, (None, None))[1]


def optimizer_settings(kind: str, training: dict, y_values: np.ndarray) -> tuple[str, dict]:
    """(optimizer, its per-pixel hyperparameters) of pixels whose y values (not log10) are given."""
    optimizer = optimizers.optimizer_of(training)
    section, field = Y_FIELDS.get(kind, (None, None))
    axis = (field, y_values) if section == "training" else None
    return optimizer, optimizers.pixel_parameters(optimizer, training, len(np.atleast_1d(y_values)), axis)


def mlp_learning_rates(kind: str, x_values: np.ndarray, y_values: np.ndarray, n_layers: int):
    """(learning_rates (P, n_layers), offsets (P,) or None) of an mlp's pixels."""
    if kind in ("lr_vs_lr", "paraminit_vs_lr"):
        return problem.per_layer_learning_rates(x_values, y_values, kind, n_layers)
    if kind not in Y_FIELDS:
        raise ValueError(f"phase_space must be one of {KINDS}, got {kind!r}")
    x = np.asarray(x_values, dtype=np.float64)
    return np.repeat(x[:, None], n_layers, axis=1), None
