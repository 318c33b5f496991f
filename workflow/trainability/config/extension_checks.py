"""Checks of the fields added beyond the paper: model kinds, optimisers, per-pixel
randomness, phase spaces with a hyperparameter on an axis, the line and uncertainty
estimators. Each problem names the experiment's field and what is allowed; called by
``experiment_checks.semantic_problems`` on a resolved experiment (``config.resolve_experiment``).
"""

from __future__ import annotations

import math

from trainability.boundary import uncertainty
from trainability.contract import optimizers, phase_space, problem, randomness

MODEL_FIELDS = {
    "mlp": ("width", "depth", "nonlinearity"),
    "quadratic_cosine": ("form", "amplitude", "wavelength", "start"),
}


def extension_problems(where: str, exp: dict) -> list[str]:
    return (
        model_problems(where, exp)
        + optimizer_problems(where, exp)
        + per_pixel_problems(where, exp)
        + estimator_problems(where, exp)
    )


def model_problems(where: str, exp: dict) -> list[str]:
    model, kind = exp["model"], problem.model_kind(exp["model"])
    axis = phase_space.axis_field(exp["phase_space"]["kind"])
    problems = [
        f"{where}.model.{name}: a field of the {other} model, not of {kind} (model.kind); "
        f"{kind} fields: {', '.join(MODEL_FIELDS[kind])}"
        for other, fields in MODEL_FIELDS.items()
        if other != kind
        for name in fields
        if name in model
    ]
    ps_kind = exp["phase_space"]["kind"]
    if kind not in phase_space.MODELS[ps_kind]:
        allowed = [k for k, models in phase_space.MODELS.items() if kind in models]
        problems.append(
            f"{where}.phase_space.kind: {ps_kind!r} does not apply to the {kind} model; allowed: {allowed}"
        )
    if kind != "quadratic_cosine":
        return problems
    for name in ("amplitude", "wavelength"):
        if name == axis and name in model:
            problems.append(
                f"{where}.model.{name}: given, but phase_space.kind {ps_kind!r} puts it on the y axis; "
                f"allowed: one of the two"
            )
        elif name != axis and name not in model:
            problems.append(f"{where}.model.{name}: required by the quadratic_cosine model")
    form = model["form"]
    most = 1.0 if form == "multiplicative" else math.inf
    y_hi = 10 ** exp["phase_space"]["y"][1] if axis == "amplitude" else None
    if "amplitude" in model and not 0.0 <= model["amplitude"] <= most:
        problems.append(
            f"{where}.model.amplitude: {model['amplitude']!r} is not allowed for the {form} form; "
            f"allowed: 0 <= amplitude" + (" <= 1 (f must stay bounded below)" if most < math.inf else "")
        )
    if y_hi is not None and y_hi > most:
        problems.append(
            f"{where}.phase_space.y: amplitudes up to {y_hi:.4g}; allowed for the {form} form: "
            f"<= 1, i.e. y bounds <= 0"
        )
    if "wavelength" in model and not model["wavelength"] > 0.0:
        problems.append(f"{where}.model.wavelength: {model['wavelength']!r}; allowed: wavelength > 0")
    data = exp["data"]
    for name in ("init_file", "size", "per_pixel"):
        if name in data:
            problems.append(f"{where}.data.{name}: the quadratic_cosine model has no data; remove it")
    training = exp["training"]
    if training["batch"] != "full":
        problems.append(f"{where}.training.batch: the quadratic_cosine model has no data; allowed: full")
    for name in ("minibatch_file", "minibatch_seed"):
        if name in training:
            problems.append(f"{where}.training.{name}: the quadratic_cosine model has no data; remove it")
    if training["dtype"] != "float64":
        problems.append(
            f"{where}.training.dtype: the quadratic_cosine model trains in float64; allowed: float64"
        )
    return problems


def optimizer_problems(where: str, exp: dict) -> list[str]:
    training, ps_kind = exp["training"], exp["phase_space"]["kind"]
    optimizer = optimizers.optimizer_of(training)
    own = optimizers.OPTIMIZERS[optimizer]
    problems = []
    for name in optimizers.HYPERPARAMETERS:
        if name in training and name not in own:
            owner = next(o for o, names in optimizers.OPTIMIZERS.items() if name in names)
            takes = f"{optimizer} takes: {', '.join(own)}" if own else f"{optimizer} takes none"
            problems.append(
                f"{where}.training.{name}: a hyperparameter of {owner}, not of {optimizer} "
                f"(training.optimizer); {takes}"
            )
        elif name in training:
            problems += [
                f"{where}.training.{name}: {p}" for p in optimizers.value_problems(name, training[name])
            ]
    section, field = phase_space.Y_FIELDS.get(ps_kind, (None, None))
    if section != "training":
        return problems
    if field not in own:
        allowed = [k for k, (s, f) in phase_space.Y_FIELDS.items() if s == "training" and f in own]
        problems.append(
            f"{where}.phase_space.kind: {ps_kind!r} puts training.{field} on the y axis, but optimizer "
            f"{optimizer} (training.optimizer) has no {field}; allowed with {optimizer}: "
            f"{allowed + [k for k in ('lr_vs_lr', 'paraminit_vs_lr')]}"
        )
    elif field in exp["training"]:
        problems.append(
            f"{where}.training.{field}: given, but phase_space.kind {ps_kind!r} puts it on the y axis; "
            f"allowed: one of the two"
        )
    elif field != "eps":
        y_hi = exp["phase_space"]["y"][1]
        if not y_hi < 0.0:
            problems.append(
                f"{where}.phase_space.y: {exp['phase_space']['y']} gives {field} = 10**y up to "
                f"{10**y_hi:.4g}; allowed: 0 <= {field} < 1, i.e. y bounds below 0"
            )
    return problems


def per_pixel_problems(where: str, exp: dict) -> list[str]:
    drawn = randomness.kinds(exp["data"])
    data, training = exp["data"], exp["training"]
    problems = []
    for kind in sorted(drawn & {"weights", "data"}):
        if "init_file" in data:
            problems.append(
                f"{where}.data.per_pixel: {kind!r} with data.init_file, which fixes the draw; allowed: "
                f"per-pixel {kind} with generated data (data.size, data.seed), or no init_file"
            )
    if "minibatch" in drawn:
        if training["batch"] == "full":
            problems.append(f"{where}.data.per_pixel: 'minibatch' but training.batch is 'full'")
        if "minibatch_file" in training:
            problems.append(
                f"{where}.data.per_pixel: 'minibatch' with training.minibatch_file, which fixes the draw; "
                f"allowed: one of the two"
            )
    if drawn and exp["zoom"]["centre"] == "auto":
        problems.append(
            f"{where}.data.per_pixel: not with zoom.centre auto (the centre search's pilot pixels are not "
            f"the frame's pixels, so they would draw other problems); allowed: a given centre"
        )
    return problems


def estimator_problems(where: str, exp: dict) -> list[str]:
    problems = []
    fewest = uncertainty.fewest_fitting_points()
    if "uncertainty" in exp and exp["uncertainty"]["points"] < fewest:
        min_changes, saturation = uncertainty.fit_thresholds()
        problems.append(
            f"{where}.uncertainty.points: {exp['uncertainty']['points']} points can never give a fit: "
            f"an epsilon counts only when at least {min_changes} of the points change and at most "
            f"{saturation:.0%} of them do (trainability.boundary.uncertainty.fit); allowed: {fewest} or more"
        )
    if "line" not in exp:
        return problems
    lo, hi = exp["phase_space"]["y"]
    y = exp["line"]["y"]
    if not lo <= y <= hi:
        problems.append(
            f"{where}.line.y: {y} lies outside the window {[lo, hi]} of phase_space.y; allowed: inside it"
        )
    x_lo, x_hi = exp["phase_space"]["x"]
    a, b = exp["line"]["x"]
    if not x_lo <= a < b <= x_hi:
        problems.append(
            f"{where}.line.x: {[a, b]} is not inside the window {[x_lo, x_hi]} of phase_space.x "
            f"with min < max; allowed: min < max inside it"
        )
    return problems
