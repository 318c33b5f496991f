"""Real Snakemake runs of the tiny config: outputs, provenance, sharding, reruns."""

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter

import h5py
import numpy as np
import pytest

from trainability.boundary import box_counting, scoring
from trainability.contract import grid, problem, statistics
from trainability.kernels import c_cpu, dispatch
from trainability.results import files
from workflow_helpers import (
    planned_jobs,
    prepare_workdir,
    read_config,
    snakemake,
    snakemake_command,
    write_config,
)

pytestmark = pytest.mark.slow

AGGREGATES = {"six_panel", "dimension_table", "all"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete run of the tiny config, shared by the read-only tests."""
    workdir = prepare_workdir(tmp_path_factory.mktemp("run"))
    snakemake(workdir)
    return workdir


def test_run_produces_every_output(finished_run):
    config = read_config(finished_run)
    for name, exp in config["experiments"].items():
        frames = exp.get("zoom", {}).get("frames", 1)
        for frame in range(frames):
            assert (finished_run / f"results/{name}/frame{frame}/grid.h5").is_file()
            assert (finished_run / f"results/{name}/frame{frame}/scores.h5").is_file()
        for fig in ("landscape", "boxcount"):
            for suffix, magic in ((".pdf", b"%PDF"), (".png", b"\x89PNG")):
                path = finished_run / f"results/{name}/figures/{fig}{suffix}"
                assert path.read_bytes()[:4] == magic
        # The dimension file is the box counting of all frames' boundaries.
        estimate = json.loads((finished_run / f"results/{name}/dimension.json").read_text())
        edges = [
            box_counting.edge_map(
                files.read_h5(finished_run / f"results/{name}/frame{f}/scores.h5", ["convergence"])[0][
                    "convergence"
                ]
            )
            for f in range(frames)
        ]
        expected = box_counting.fractal_dimension(edges)
        assert len(estimate["box_counts"]) == frames
        assert estimate["n_slopes"] == expected.n_slopes
        if expected.n_slopes:
            assert estimate["median"] == pytest.approx(expected.median)
    summary = finished_run / "results/summary"
    assert (summary / "six_panel.png").read_bytes()[:4] == b"\x89PNG"
    table = (summary / "dimension_table.md").read_text()
    assert "tanh small" in table and "1.66" in table
    # Every rule wrote its log.
    assert list((finished_run / "logs/tanh_small/frame0/shards").glob("shard*.log"))
    assert "pixel-steps/s" in (finished_run / "logs/tanh_small/frame0/shards/shard0.log").read_text()
    # No temporary file was left behind.
    assert not list(finished_run.glob("results/**/.*tmp-*"))


def test_merged_grid_equals_direct_training(finished_run):
    """The shard/merge bookkeeping puts every pixel where the kernel says it belongs."""
    exp = read_config(finished_run)["experiments"]["tanh_small"]
    with h5py.File(finished_run / "results/tanh_small/frame0/grid.h5") as h5:
        merged = {name: h5[name][()] for name in statistics.STAT_FIELDS}
        attrs = dict(h5.attrs)
        x_axis, y_axis = h5["x"][()], h5["y"][()]
        assert h5["sum_u"].dims[1][0].name == "/x"
    res = exp["grid"]["resolution"]
    np.testing.assert_array_equal(x_axis, np.linspace(*exp["phase_space"]["x"], res))
    np.testing.assert_array_equal(y_axis, np.linspace(*exp["phase_space"]["y"], res))
    shared = problem.build_problem(
        exp["model"],
        {**exp["data"], "size": problem.dataset_size("params", exp["model"], 1)},
        exp["training"],
    )
    x, y = grid.pixel_coordinates((exp["phase_space"]["x"], exp["phase_space"]["y"]), res, 0, res * res)
    lrs, _ = problem.per_layer_learning_rates(x, y, "lr_vs_lr", 2)
    direct = dispatch.train_pixels(shared, lrs, nonlinearity="tanh", steps=30, device="cpu")
    for name in statistics.STAT_FIELDS:
        np.testing.assert_array_equal(merged[name], direct[name].reshape(res, res))
    # Both signs occur, so the test exercises the boundary.
    measure = scoring.convergence_measure(merged)
    assert (measure < 0).any() and (measure > 0).any()
    # Provenance: resolved experiment, versions, device.
    assert json.loads(attrs["training"])["model"]["nonlinearity"] == "tanh"
    versions = json.loads(attrs["versions"])
    assert {"torch", "numpy", "h5py", "trainability"} <= set(versions)
    assert json.loads(attrs["devices"])
    # The kernel "auto" picked for this device is recorded.
    assert json.loads(attrs["kernels"]) == [dispatch.select_kernel(shared, "float64", "cpu")]


def test_merged_grid_is_bitwise_identical_whatever_the_shard_size(finished_run):
    with (
        h5py.File(finished_run / "results/tanh_small/frame0/grid.h5") as a,
        h5py.File(finished_run / "results/tanh_resharded/frame0/grid.h5") as b,
    ):
        assert a.attrs["n_shards"] != b.attrs["n_shards"]
        for name in statistics.STAT_FIELDS:
            assert np.array_equal(a[name][()], b[name][()], equal_nan=True), name


def test_scores_hold_two_measures(finished_run):
    data, _ = files.read_h5(finished_run / "results/tanh_small/frame0/scores.h5")
    stats, _ = files.read_h5(finished_run / "results/tanh_small/frame0/grid.h5", statistics.STAT_FIELDS)
    np.testing.assert_array_equal(data["convergence"], scoring.convergence_measure(stats))
    np.testing.assert_allclose(data["log_loss_ratio"], np.log10(stats["loss_final"] / stats["loss_initial"]))


def test_zoom_frames_shrink_around_the_centre(finished_run):
    windows = []
    for frame in range(2):
        _, attrs = files.read_h5(finished_run / f"results/offset_minibatch/frame{frame}/grid.h5", [])
        windows.append(np.array(attrs["window_log10"]))
    widths = windows[0][:, 1] - windows[0][:, 0], windows[1][:, 1] - windows[1][:, 0]
    np.testing.assert_allclose(widths[1], widths[0] / 2)
    np.testing.assert_allclose(windows[1].mean(axis=1), windows[0].mean(axis=1))


def test_rerun_only_what_changed(finished_run, tmp_path):
    workdir = tmp_path / "rerun"
    shutil.copytree(finished_run, workdir)
    # Snakemake's provenance records hold absolute paths of the workdir; the
    # copy must keep mtimes and metadata, which copytree does.
    assert planned_jobs(workdir) == [], "an unchanged config must schedule nothing"

    # One value of one experiment: only that experiment's jobs, plus the aggregates.
    config = read_config(workdir)
    config["experiments"]["offset_minibatch"]["training"]["steps"] = 26
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    experiments = {wc.get("experiment") for rule, wc in jobs if rule not in AGGREGATES}
    assert experiments == {"offset_minibatch"}
    counts = Counter(rule for rule, _ in jobs)
    assert counts["train_shard"] == 2 * 2  # 2 frames x 2 shards
    sequence = {"frame_images", "zoom_strip", "dimension_depth", "video"}  # a 2-frame sequence
    assert set(counts) - AGGREGATES == {"train_shard", "merge", "score", "dimension", "figures", *sequence}

    # A new experiment: only its jobs, plus the aggregates that list it.
    config["experiments"]["offset_minibatch"]["training"]["steps"] = 25
    config["experiments"]["relu_new"] = {
        "model": {"width": 3, "depth": 2, "nonlinearity": "relu"},
        "data": {"size": 5, "seed": 1},
        "training": {"steps": 10},
        "phase_space": {"kind": "lr_vs_lr", "x": [-1, 1], "y": [-1, 1]},
        "grid": {"resolution": 6, "shard_size": 36},
    }
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    experiments = {wc.get("experiment") for rule, wc in jobs if rule not in AGGREGATES}
    assert experiments == {"relu_new"}

    # A title is not a training parameter: figures only, no training.
    del config["experiments"]["relu_new"]
    config["experiments"]["tanh_small"]["title"] = "renamed"
    write_config(workdir, config)
    rules = Counter(rule for rule, _ in planned_jobs(workdir))
    assert rules["train_shard"] == 0 and rules["figures"] == 1


def test_a_killed_job_leaves_no_finished_looking_file(tmp_path):
    """SIGKILL mid-training: nothing at the shard's path; the next run completes it."""
    config = {
        "experiments": {
            "slow": {
                "model": {"width": 8, "depth": 2, "nonlinearity": "tanh"},
                "data": {"size": "params", "seed": 0},
                "training": {"steps": 10**7},  # far longer than the test waits
                "phase_space": {"kind": "lr_vs_lr", "x": [-1, 1], "y": [-1, 1]},
                "grid": {"resolution": 16, "shard_size": 256},
            }
        }
    }
    workdir = prepare_workdir(tmp_path / "killed", config)
    cmd = snakemake_command(workdir, "--cores", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = workdir / "logs/slow/frame0/shards/shard0.log"
    deadline = time.time() + 120
    while time.time() < deadline and "pixels" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.5)
    time.sleep(2)  # well inside the training loop
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (workdir / "results/slow/frame0/shards/shard0.h5").exists()
    assert not list(workdir.glob("results/**/*.h5"))
    # A later run finishes the job: after a hard kill Snakemake's lock is stale
    # and must be released, as a user would (README: "After a crash").
    config["experiments"]["slow"]["training"]["steps"] = 3
    write_config(workdir, config)
    snakemake(workdir, "--unlock")
    snakemake(workdir)
    stats, _ = files.read_h5(workdir / "results/slow/frame0/grid.h5", statistics.STAT_FIELDS)
    assert stats["sum_u"].shape == (16, 16)


@pytest.mark.skipif(c_cpu.load_library() is None, reason="needs the C kernel (a C compiler)")
def test_the_workflow_refuses_an_explicit_kernel_before_any_job(tmp_path, monkeypatch):
    """tiny.yaml has width 4: `kernel: fused` cannot run it on CUDA (Triton needs >= 16)."""
    workdir = prepare_workdir(tmp_path)
    config = read_config(workdir)
    config["kernel"] = "fused"
    config["experiments"] = {"tanh_small": config["experiments"]["tanh_small"]}
    write_config(workdir, config)
    monkeypatch.delenv("TRAINABILITY_DEVICE", raising=False)
    result = snakemake(workdir, "--dry-run", check=False)
    assert result.returncode != 0
    assert "kernel: 'fused' cannot run experiments.tanh_small on cuda" in result.stdout + result.stderr
    assert "powers of two >= 16, not 4 and 4" in result.stdout + result.stderr
    # Jobs restricted to the CPU: the C kernel runs it, so the plan goes ahead.
    monkeypatch.setenv("TRAINABILITY_DEVICE", "cpu")
    assert sum(rule == "train_shard" for rule, _ in planned_jobs(workdir)) == 4


def test_a_sequence_about_the_window_middle_off_the_boundary_only_warns(finished_run):
    """offset_minibatch zooms into its window's middle (no centre given): a frame without
    boundary there is recorded and logged, not an error (a given or auto centre is)."""
    data = json.loads((finished_run / "results/offset_minibatch/dimension.json").read_text())
    expected = []
    for frame in range(2):
        scores, _ = files.read_h5(finished_run / f"results/offset_minibatch/frame{frame}/scores.h5")
        edges = box_counting.edge_map(scores["convergence"])  # 9 x 9: the middle quarter is 2 x 2
        if not edges[3:5, 3:5].any():
            expected.append(frame)
    assert data["frames_off_boundary"] == expected
    log = (finished_run / "logs/offset_minibatch/dimension.log").read_text()
    assert ("hold no boundary in their central region" in log) == bool(expected)


@pytest.mark.parametrize(
    "target,expected",
    [
        ("results/nosuch/frame0/grid.h5", "no experiment 'nosuch' in the config; experiments: ["),
        ("results/tanh_small/frame5/grid.h5", "experiment 'tanh_small' has frames 0..0 (zoom.frames: 1)"),
        (
            "results/offset_minibatch/frame2/scores.h5",
            "has frames 0..1 (zoom.frames: 2); there is no frame 2",
        ),
    ],
)
def test_a_target_outside_the_config_names_what_exists(finished_run, target, expected):
    result = snakemake(finished_run, "--dry-run", target, check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and expected in text, text[-3000:]
    assert "KeyError" not in text
