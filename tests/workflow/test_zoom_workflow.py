"""Zoom sequences through the real workflow: automatic centre, per-frame outputs, video, reruns."""

import csv
import json
import shutil
import subprocess
import zipfile
from collections import Counter

import imageio_ffmpeg
import numpy as np
import pytest
from matplotlib import image as mpl_image

from trainability.boundary import box_counting
from trainability.contract import statistics
from trainability.results import files
from workflow_helpers import planned_jobs, prepare_workdir, read_config, snakemake, write_config

pytestmark = pytest.mark.slow

RESOLUTION = 16
FRAMES = 4
AUTO = {
    "experiments": {
        "auto_zoom": {
            "title": "tanh, automatic zoom",
            "paper_dimension": 1.66,
            "model": {"width": 4, "depth": 2, "nonlinearity": "tanh"},
            "data": {"size": "params", "target_dim": 1, "seed": 3},
            "training": {"steps": 30, "batch": "full", "dtype": "float64"},
            "phase_space": {"kind": "lr_vs_lr", "x": [-1, 3], "y": [-1, 3]},
            "grid": {"resolution": RESOLUTION, "shard_size": 128},
            "zoom": {"frames": FRAMES, "factor": 2, "centre": "auto", "pilot_resolution": 16},
        }
    }
}
SEQUENCE_RULES = {"frame_images", "zoom_strip", "dimension_depth", "video"}
AGGREGATES = {"six_panel", "dimension_table", "all"}


@pytest.fixture(scope="module")
def zoom_run(tmp_path_factory):
    workdir = prepare_workdir(tmp_path_factory.mktemp("zoom"), AUTO)
    snakemake(workdir)
    return workdir


def windows(workdir, frames=FRAMES):
    return [
        np.array(files.read_h5(workdir / f"results/auto_zoom/frame{k}/grid.h5", [])[1]["window_log10"])
        for k in range(frames)
    ]


def test_every_frame_is_concentric_about_the_centre_found(zoom_run):
    found = json.loads((zoom_run / "results/auto_zoom/centre.json").read_text())
    centre = np.array(found["centre"])
    # In the central half of the configured window.
    assert np.all((0.0 <= centre) & (centre <= 2.0))
    for k, window in enumerate(windows(zoom_run)):
        np.testing.assert_allclose(window.mean(axis=1), centre, rtol=0, atol=1e-12)
        np.testing.assert_allclose(window[:, 1] - window[:, 0], [4.0 / 2**k] * 2, rtol=1e-12)


def test_every_frame_holds_boundary_pixels_in_its_centre(zoom_run):
    for k in range(FRAMES):
        scores, _ = files.read_h5(zoom_run / f"results/auto_zoom/frame{k}/scores.h5", ["convergence"])
        values = scores["convergence"]
        # The middle 4 x 4 pixels (of 16 x 16) hold both converged and diverged pixels.
        middle = values[6:10, 6:10]
        assert (middle < 0).any() and (middle > 0).any(), f"frame {k}:\n{np.sign(values)}"


def test_sequence_outputs(zoom_run):
    results = zoom_run / "results/auto_zoom"
    for k in range(FRAMES):
        image = mpl_image.imread(results / f"frame{k}/landscape.png")
        assert image.shape[:2] == (RESOLUTION, RESOLUTION)
        assert (results / f"frame{k}/panel.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("zoom_strip", "dimension_vs_depth"):
        assert (results / f"figures/{name}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (results / f"figures/{name}.png").read_bytes()[:4] == b"\x89PNG"
    # Per-frame box counts and the depth of each frame.
    data = json.loads((results / "dimension.json").read_text())
    assert len(data["box_counts"]) == FRAMES
    np.testing.assert_allclose(data["decades"], [k * np.log10(2) for k in range(FRAMES)])
    with open(zoom_run / "results/summary/dimension_table.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["decades"]) == pytest.approx((FRAMES - 1) * np.log10(2), abs=1e-3)
    assert int(row["frames"]) == FRAMES


def test_the_video_decodes_with_the_expected_frames(zoom_run):
    path = zoom_run / "results/auto_zoom/figures/zoom.mp4"
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    # 45 video frames per 2x zoom (1.5 s at 30 fps) between keyframes, then 1 s held.
    assert frames == 45 * (FRAMES - 1) + 30
    assert tuple(meta["size"]) == (256, 256)  # small keyframes are scaled up to 256
    assert meta["fps"] == pytest.approx(30)


def test_the_report_holds_the_strip_the_figure_and_the_video(zoom_run):
    snakemake(zoom_run, "--report", "report.zip")
    names = zipfile.ZipFile(zoom_run / "report.zip").namelist()
    for wanted in ("zoom_strip.png", "dimension_vs_depth.png", "zoom.mp4"):
        assert any(name.endswith(wanted) for name in names), (wanted, names)


def test_reruns_are_exact(zoom_run, tmp_path):
    workdir = tmp_path / "rerun"
    shutil.copytree(zoom_run, workdir)
    assert planned_jobs(workdir) == [], "an unchanged config must schedule nothing"

    # More frames: only the new frames are trained; the centre does not move.
    config = read_config(workdir)
    config["experiments"]["auto_zoom"]["zoom"]["frames"] = FRAMES + 2
    write_config(workdir, config)
    jobs = planned_jobs(workdir)
    counts = Counter(rule for rule, _ in jobs)
    assert "find_centre" not in counts
    trained = {int(wc["frame"]) for rule, wc in jobs if rule == "train_shard"}
    assert trained == {FRAMES, FRAMES + 1}
    assert counts["train_shard"] == 2 * 2  # 2 new frames x 2 shards
    assert {int(wc["frame"]) for rule, wc in jobs if rule == "frame_images"} == {FRAMES, FRAMES + 1}
    assert set(counts) - AGGREGATES == {
        "train_shard",
        "merge",
        "score",
        "dimension",
        "figures",
        *SEQUENCE_RULES,
    }

    # A training value: a new centre, so every frame.
    config["experiments"]["auto_zoom"]["zoom"]["frames"] = FRAMES
    config["experiments"]["auto_zoom"]["training"]["steps"] = 31
    write_config(workdir, config)
    counts = Counter(rule for rule, _ in planned_jobs(workdir))
    assert counts["find_centre"] == 1 and counts["train_shard"] == FRAMES * 2


def test_a_given_centre_off_the_boundary_names_the_frames(tmp_path):
    config = json.loads(json.dumps(AUTO))
    exp = config["experiments"]["auto_zoom"]
    exp["grid"]["resolution"] = 8
    # Tiny learning rates: everything converges near (-0.9, -0.9) at every scale below frame 0.
    exp["zoom"] = {"frames": 3, "factor": 2, "centre": [-0.9, -0.9]}
    workdir = prepare_workdir(tmp_path / "off", config)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    log = (workdir / "logs/auto_zoom/dimension.log").read_text()
    assert "frames [0, 1, 2] hold no boundary in their central region" in log
    assert "zoom.centre: auto" in log
    # What was computed is kept.
    for k in range(3):
        assert (workdir / f"results/auto_zoom/frame{k}/scores.h5").is_file()


def test_too_many_frames_is_refused_before_any_job(tmp_path):
    config = json.loads(json.dumps(AUTO))
    config["experiments"]["auto_zoom"]["zoom"]["frames"] = 500
    workdir = prepare_workdir(tmp_path / "deep", config)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "experiments.auto_zoom.zoom.frames: 500 frames are too many" in text
    assert "or max" in text
    assert not (workdir / "results").exists()


def test_edge_maps_match_the_dimension_file(zoom_run):
    data = json.loads((zoom_run / "results/auto_zoom/dimension.json").read_text())
    for k, counts in enumerate(data["box_counts"]):
        scores, _ = files.read_h5(zoom_run / f"results/auto_zoom/frame{k}/scores.h5", ["convergence"])
        expected = box_counting.box_count(box_counting.edge_map(scores["convergence"]))
        assert counts["counts"] == expected.counts.tolist()


def test_snakemake_is_quiet_about_ffmpeg():
    # The encoder is the binary imageio-ffmpeg ships: present without any system FFmpeg.
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    assert "libx264" in out.stdout


def test_a_failed_job_mid_sequence_resumes_and_keeps_what_was_finished(tmp_path, monkeypatch):
    workdir = prepare_workdir(tmp_path / "resume", AUTO)
    monkeypatch.setenv("TRAINABILITY_TEST_FAIL_SHARDS", "auto_zoom:2:1")
    failed = snakemake(workdir, "--cores", "1", check=False)
    assert failed.returncode != 0
    centre = (workdir / "results/auto_zoom/centre.json").read_bytes()
    finished = {
        path: (path.stat().st_mtime_ns, path.read_bytes())
        for path in workdir.glob("results/auto_zoom/frame*/**/*.h5")
    }
    assert finished and not (workdir / "results/auto_zoom/frame2/grid.h5").exists()

    monkeypatch.delenv("TRAINABILITY_TEST_FAIL_SHARDS")
    jobs = planned_jobs(workdir)
    assert "find_centre" not in {rule for rule, _ in jobs}
    retrained = {(int(wc["frame"]), int(wc["shard"])) for rule, wc in jobs if rule == "train_shard"}
    assert (2, 1) in retrained
    assert not any(
        (workdir / f"results/auto_zoom/frame{f}/shards/shard{s}.h5") in finished for f, s in retrained
    )
    snakemake(workdir)
    assert (workdir / "results/auto_zoom/centre.json").read_bytes() == centre
    for path, (mtime, data) in finished.items():
        if "shards" in path.parts:  # temporary: removed once merged (not retrained: the plan above)
            assert not path.exists(), path
            continue
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == data, path
    assert (workdir / "results/auto_zoom/figures/zoom.mp4").is_file()


def shard_logs(workdir):
    """Each shard job's log of the last run, by (frame, shard)."""
    return {
        (int(path.parent.parent.name.removeprefix("frame")), int(path.stem.removeprefix("shard"))): (
            path.read_text()
        )
        for path in workdir.glob("logs/auto_zoom/frame*/shards/shard*.log")
    }


def grid_datasets(workdir):
    return {
        k: files.read_h5(workdir / f"results/auto_zoom/frame{k}/grid.h5", statistics.STAT_FIELDS)[0]
        for k in range(FRAMES)
    }


def assert_nothing_retrained(workdir, grids_before, output):
    logs = shard_logs(workdir)
    assert len(logs) == FRAMES * 2
    assert all("copied from" in text and "training:" not in text for text in logs.values()), output[-3000:]
    after = grid_datasets(workdir)
    for k, data in grids_before.items():
        assert all(after[k][name].tobytes() == data[name].tobytes() for name in data), k


def test_a_centre_found_again_retrains_nothing_and_a_bad_one_is_moved_aside(zoom_run, tmp_path):
    workdir = tmp_path / "again"
    shutil.copytree(zoom_run, workdir)
    centre_file = workdir / "results/auto_zoom/centre.json"
    found = json.loads(centre_file.read_text())
    grids = grid_datasets(workdir)

    # Deleted: found again bit for bit; every frame's pixels are copied, none is trained.
    centre_file.unlink()
    output = snakemake(workdir).stderr
    assert json.loads(centre_file.read_text())["centre"] == found["centre"]
    assert_nothing_retrained(workdir, grids, output)

    # Outside the region the search keeps it in, with a damaged history beside it: a dry run
    # names it and changes nothing; a run moves it aside, finds the centre again, retrains
    # nothing, and skips the history's bad lines with a warning.
    centre_file.write_text(json.dumps(dict(found, centre=[10, 10])))
    history = workdir / "logs/auto_zoom/centre_history.jsonl"
    history.write_text(history.read_text() + "garbage\n\n{\n")
    dry = snakemake(workdir, "--dry-run")
    message = "Damaged result file results/auto_zoom/centre.json (its centre x = 10 lies outside [0.0, 2.0]"
    assert message in dry.stdout + dry.stderr
    assert json.loads(centre_file.read_text())["centre"] == [10, 10]
    output = snakemake(workdir).stderr
    (aside,) = (workdir / "results/auto_zoom").glob("centre.json.corrupt-*")
    assert json.loads(aside.read_text())["centre"] == [10, 10], "moved aside, never deleted"
    assert json.loads(centre_file.read_text())["centre"] == found["centre"]
    assert_nothing_retrained(workdir, grids, output)
    log = (workdir / "logs/auto_zoom/find_centre.log").read_text()
    assert "centre_history.jsonl: lines [" in log and "are not JSON; skipped" in log
