"""A double-double zoom sequence through the real workflow: past float64's limit, with an
automatic centre found in precise stages, decimal-string windows, and the float64 limit marked."""

import json

import numpy as np
import pytest

from trainability.contract import grid, numerics
from trainability.kernels import c_cpu_dd
from trainability.results import files
from workflow_helpers import prepare_workdir, snakemake

pytestmark = pytest.mark.slow

RESOLUTION = 16
FACTOR = 1e5
DEEP = {
    "experiments": {
        "deep": {
            "title": "tanh, double-double",
            "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
            "data": {"size": "params", "target_dim": 1, "seed": 3},
            "training": {"steps": 30, "batch": "full", "dtype": "float64x2"},
            "phase_space": {"kind": "lr_vs_lr", "x": [-1, 3], "y": [-1, 3]},
            "grid": {"resolution": RESOLUTION, "shard_size": 128},
            "zoom": {"frames": "max", "factor": FACTOR, "centre": "auto", "pilot_resolution": 16},
        }
    }
}


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    workdir = prepare_workdir(tmp_path_factory.mktemp("deep"), DEEP)
    snakemake(workdir)
    return workdir


def test_the_sequence_goes_twice_as_deep_as_float64(deep_run):
    frames = sorted(int(p.name[5:]) for p in (deep_run / "results/deep").glob("frame*"))
    float64_frames = grid.max_frames([[-1, 3], [-1, 3]], FACTOR, "auto", RESOLUTION, "float64")
    assert frames == list(range(len(frames))) and len(frames) >= 2 * float64_frames - 1
    assert grid.depth_decades(FACTOR, frames[-1]) >= 25


def test_the_centre_and_the_deep_windows_keep_their_digits(deep_run):
    found = json.loads((deep_run / "results/deep/centre.json").read_text())
    assert all(isinstance(c, str) and len(c) > 30 for c in found["centre"])
    deepest = max(int(p.name[5:]) for p in (deep_run / "results/deep").glob("frame*"))
    stats, attrs = files.read_h5(deep_run / f"results/deep/frame{deepest}/grid.h5")
    window = attrs["window_log10"]
    assert window == grid.concentric_window_precise([[-1, 3], [-1, 3]], FACTOR, deepest, found["centre"])
    assert float(window[0][0]) == float(window[0][1])  # float64 sees a point, the strings a frame
    with numerics.precise_arithmetic():
        middle = [(numerics.precise(lo) + numerics.precise(hi)) / 2 for lo, hi in window]
        assert all(
            abs(m - numerics.precise(c)) < numerics.precise("1e-45") for m, c in zip(middle, found["centre"])
        )
    # The boundary runs through the deepest frame: both labels, in more than one row.
    scores, _ = files.read_h5(deep_run / f"results/deep/frame{deepest}/scores.h5")
    converged = scores["trainable"].reshape(RESOLUTION, RESOLUTION) > 0
    assert converged.any() and (~converged).any()
    assert len({tuple(row) for row in converged}) > 1 and len({tuple(c) for c in converged.T}) > 1
    assert attrs["training"]["training"]["dtype"] == "float64x2"
    (source,) = attrs["shard_sources"]
    assert source["arithmetic"] == {"kernel": "fused", "build": c_cpu_dd.BUILD_CLASS, "device": "cpu"}


def test_the_figures_mark_the_float64_limit_and_the_video_is_made(deep_run):
    figures = deep_run / "results/deep/figures"
    for name in ("dimension_vs_depth.png", "zoom_strip.png", "zoom.mp4"):
        assert (figures / name).stat().st_size > 1000
    assert np.isfinite(json.loads((deep_run / "results/deep/dimension.json").read_text())["decades"][-1])
