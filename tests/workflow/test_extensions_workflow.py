"""Real Snakemake runs of the extensions: optimisers, per-pixel randomness, the 1-D control,
the uncertainty exponent and the line, through the same rules as the paper's conditions."""

import csv
import json

import h5py
import numpy as np
import pytest
import torch
import yaml

from trainability import config as tconfig
from trainability import training
from trainability.boundary import line_dimension, uncertainty
from trainability.contract import numerics
from trainability.kernels import quadratic_cosine
from trainability.results import files
from workflow_helpers import REPO, planned_jobs, prepare_workdir, read_config, snakemake, write_config

pytestmark = pytest.mark.slow

CONFIG = REPO / "tests" / "configs" / "extensions_tiny.yaml"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ext_run(tmp_path_factory):
    workdir = prepare_workdir(tmp_path_factory.mktemp("ext"), yaml.safe_load(CONFIG.read_text()))
    snakemake(workdir)
    return workdir


def resolved(workdir):
    return tconfig.validate_config(read_config(workdir), workdir)


def grid_stats(workdir, name):
    return files.read_h5(workdir / f"results/{name}/frame0/grid.h5", ["diverged_step", "sum_u", "x", "y"])


def test_every_experiment_runs_through_the_same_rules(ext_run):
    for name in read_config(ext_run)["experiments"]:
        for path in ("frame0/grid.h5", "frame0/scores.h5", "dimension.json", "figures/landscape.png"):
            assert (ext_run / f"results/{name}/{path}").stat().st_size > 0, (name, path)
    with h5py.File(ext_run / "results/adam_small/frame0/grid.h5") as h5:
        assert h5["sum_u"].shape == (10, 10)


def test_a_grid_pixel_is_the_kernel_run_at_its_hyperparameters(ext_run):
    """Adam pixels (the fused C kernel) equal training.train_points at the pixel's values,
    and the optimiser matters: the same pixels with gd differ."""
    settings = tconfig.as_builtin(tconfig.training_params(resolved(ext_run)["adam_small"]))
    data, _ = grid_stats(ext_run, "adam_small")
    pick = [(1, 2), (7, 8), (9, 0)]
    x = numerics.pow10(np.array([data["x"][j] for _, j in pick]))
    y = numerics.pow10(np.array([data["y"][i] for i, _ in pick]))
    shared = training.shared_problem(settings, ext_run)
    stats = training.train_points(shared, settings, x, y, device=CPU, kernel="auto")
    for k, (i, j) in enumerate(pick):
        assert stats["sum_u"][k] == data["sum_u"][i, j], (i, j)
    gd = {
        **settings,
        "training": {
            k: v for k, v in settings["training"].items() if k == "steps" or k in ("batch", "dtype")
        },
    }
    other = training.train_points(shared, gd, x, y, device=CPU, kernel="auto")
    assert not np.array_equal(other["sum_u"], stats["sum_u"])


def test_per_pixel_draws_do_not_depend_on_the_sharding(ext_run):
    a, _ = grid_stats(ext_run, "per_pixel")
    b, _ = grid_stats(ext_run, "per_pixel_resharded")
    for name in ("diverged_step", "sum_u"):
        assert a[name].tobytes() == b[name].tobytes()
    assert len(np.unique(a["sum_u"])) > 50  # every pixel its own problem


def test_the_one_dimensional_control_is_labelled_by_divergence(ext_run):
    scores, _ = files.read_h5(ext_run / "results/liu/frame0/scores.h5", ["bounded", "trainable"])
    stats, _ = files.read_h5(ext_run / "results/liu/frame0/grid.h5", ["diverged_step", "x", "y"])
    np.testing.assert_array_equal(scores["trainable"].astype(bool), stats["diverged_step"] < 0)
    # Learning rate 10**x against amplitude 10**y at wavelength 0.1, straight from the model.
    x, y = np.meshgrid(numerics.pow10(stats["x"]), numerics.pow10(stats["y"]))
    direct = quadratic_cosine.train(x.ravel(), y.ravel(), np.full(x.size, 0.1), form="additive", steps=1000)
    np.testing.assert_array_equal(direct["diverged_step"].reshape(x.shape), stats["diverged_step"])


def test_the_line_dimension_is_liu_estimator_of_the_line(ext_run):
    result = json.loads((ext_run / "results/liu/line_dimension.json").read_text())
    spec = resolved(ext_run)["liu"]["line"]
    x = numerics.pow10(training.line_points(spec))
    stats = quadratic_cosine.train(x, np.full(x.size, 0.2), np.full(x.size, 0.1), form="additive", steps=1000)
    expected = line_dimension.fit(stats["diverged_step"] < 0)
    assert result["counts"] == list(expected.counts) and result["dimension"] == pytest.approx(
        expected.dimension
    )
    assert (ext_run / "results/liu/figures/line_dimension.png").read_bytes()[:4] == b"\x89PNG"


def test_the_uncertainty_exponent_refits_from_its_own_points(ext_run):
    result = json.loads((ext_run / "results/adam_small/uncertainty.json").read_text())
    fit = uncertainty.UncertaintyResult.from_dict(result)
    assert fit.n_points == 64 and fit.eps[0] == pytest.approx(0.1)
    assert np.all(np.diff(fit.eps) < 0) and fit.counts[0] > 0
    assert (ext_run / "results/adam_small/figures/uncertainty.pdf").read_bytes()[:4] == b"%PDF"


def test_the_table_shows_both_estimators(ext_run):
    with open(ext_run / "results/summary_ext/dimension_table.csv", newline="") as fh:
        rows = {r["experiment"]: r for r in csv.DictReader(fh)}
    adam = json.loads((ext_run / "results/adam_small/uncertainty.json").read_text())
    if adam["dimension"] is not None:
        assert float(rows["adam_small"]["uncertainty"]) == pytest.approx(adam["dimension"], abs=1e-4)
    assert rows["per_pixel"]["uncertainty"] == "" and rows["per_pixel"]["line"] == ""
    line = json.loads((ext_run / "results/liu/line_dimension.json").read_text())
    assert float(rows["liu"]["line"]) == pytest.approx(line["dimension"], abs=1e-4)
    md = (ext_run / "results/summary_ext/dimension_table.md").read_text()
    assert "| uncertainty exponent | 95% interval | line (Liu) |" in md


def test_changing_an_estimator_reruns_only_it(ext_run):
    config = read_config(ext_run)
    config["experiments"]["adam_small"]["uncertainty"]["points"] = 80
    config["experiments"]["liu"]["line"]["points_log2"] = 11
    write_config(ext_run, config)
    try:
        jobs = {(rule, wc.get("experiment")) for rule, wc in planned_jobs(ext_run)}
    finally:
        write_config(ext_run, yaml.safe_load(CONFIG.read_text()))
    # The estimators and their figures, the table that shows them; no shard, no grid, no score.
    assert jobs == {
        ("uncertainty", "adam_small"),
        ("estimator_figures", "adam_small"),
        ("line_dimension", "liu"),
        ("estimator_figures", "liu"),
        ("dimension_table", None),
        ("all", None),
    }
