"""Tests for trainability.figures.zoom, dimension.frame_slope_summary and the table's decades column."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.image import AxesImage
from matplotlib.image import imsave as mpl_imsave
from PIL import Image

from trainability.boundary.box_counting import (
    BoxCount,
    DimensionEstimate,
    FrameSlopes,
    box_count,
    frame_slope_summary,
)
from trainability.boundary.scoring import rank_colour_values
from trainability.figures.style import save_figure
from trainability.figures.tables import dimension_table
from trainability.figures.zoom import (
    dimension_depth_figure,
    frame_panel_figure,
    read_frame_image,
    save_frame_image,
    strip_frames,
    zoom_strip_figure,
)

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# End colours of matplotlib's Spectral map (ColorBrewer), as 8-bit RGB.
SPECTRAL_LOW_RED = (158, 1, 66)  # value -1: the most diverged pixel
SPECTRAL_HIGH_BLUE = (94, 79, 162)  # value +1: the most converged pixel


def read_png(path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def half_and_half(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Converged (negative) in the lower half of the rows, diverged above; all values distinct."""
    rng = np.random.default_rng(seed)
    magnitude = rng.uniform(1, 2, size=(rows, cols))
    values = np.where(np.arange(rows)[:, None] < rows // 2, -magnitude, magnitude)
    values[0, 0] = -10.0  # the most converged pixel, bottom left
    values[-1, -1] = 10.0  # the most diverged pixel, top right
    return values


def box_counts_with_slopes(*slopes) -> list[BoxCount]:
    return [
        BoxCount(sizes=np.arange(1, len(s) + 1), counts=np.ones(len(s), int), slopes=np.asarray(s, float))
        for s in slopes
    ]


# --------------------------------------------------------------------------- frame images


@pytest.mark.parametrize("shape", [(16, 16), (5, 7)])
def test_frame_image_is_native_size_oriented_and_in_paper_colours(tmp_path, shape):
    values = half_and_half(*shape)
    path = tmp_path / "f" / "frame.png"
    save_frame_image(values, path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    with Image.open(path) as picture:
        assert picture.size == (shape[1], shape[0])  # (width, height): one pixel per grid point
    rgb = read_png(path)
    # Row 0 of values is the bottom of the picture: the converged half is blue there.
    bottom, top = rgb[-(shape[0] // 2) :].astype(int), rgb[: shape[0] - shape[0] // 2].astype(int)
    # Spectral's converged half (light green to blue) is bluer than any colour of its diverged half
    # (dark red to pale yellow).
    assert bottom[..., 2].min() > top[..., 2].max()
    assert tuple(rgb[-1, 0]) == SPECTRAL_HIGH_BLUE
    assert tuple(rgb[0, -1]) == SPECTRAL_LOW_RED
    assert [p.name for p in path.parent.iterdir()] == ["frame.png"]  # no temporary left


def test_frame_image_matches_matplotlib_imshow_pipeline(tmp_path):
    values = half_and_half(24, 24, seed=3) * np.linspace(1, 3, 24)  # varied magnitudes
    save_frame_image(values, tmp_path / "ours.png")
    # The reference goes through matplotlib's own colour pipeline, as plot_landscape's imshow does.
    mpl_imsave(
        tmp_path / "ref.png", rank_colour_values(values), cmap="Spectral", vmin=-1, vmax=1, origin="lower"
    )
    np.testing.assert_array_equal(read_png(tmp_path / "ours.png"), read_png(tmp_path / "ref.png"))


def test_frame_image_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="values"):
        save_frame_image(np.zeros(5), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_read_frame_image_reduces_large_frames(tmp_path):
    values = half_and_half(40, 40)
    save_frame_image(values, tmp_path / "f.png")
    full = read_frame_image(tmp_path / "f.png")
    assert full.shape == (40, 40, 3) and full.dtype == np.uint8
    np.testing.assert_array_equal(full, read_png(tmp_path / "f.png"))
    small = read_frame_image(tmp_path / "f.png", max_size=16)
    assert max(small.shape[:2]) <= 16 and small.shape[2] == 3
    assert small[-1, 1, 2] > small[-1, 1, 0] and small[0, 1, 0] > small[0, 1, 2]  # orientation kept


def test_frame_panel(tmp_path):
    values = half_and_half(20, 20)
    panel = frame_panel_figure(values, [[0.0, 1.0], [2.0, 3.0]], "lr_vs_lr", "t · frame 3")
    fig = save_figure(panel, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]
    (ax,) = fig.axes
    assert ax.get_title() == "t · frame 3"
    np.testing.assert_allclose(ax.get_images()[0].get_extent(), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="window"):
        frame_panel_figure(values, [0.0, 1.0, 2.0, 3.0], "lr_vs_lr", None)


# --------------------------------------------------------------------------- strip


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_strip_frames_takes_all_when_few(n):
    assert strip_frames(n, count=8) == list(range(n))


@pytest.mark.parametrize(
    "n, count, expected",
    [
        (15, 8, [0, 2, 4, 6, 8, 10, 12, 14]),
        (22, 8, [0, 3, 6, 9, 12, 15, 18, 21]),
        (10, 2, [0, 9]),
        (12, 5, [0, 3, 6, 8, 11]),  # nearest to 0, 2.75, 5.5, 8.25, 11; halves round up
    ],
)
def test_strip_frames_even_spacing_known_cases(n, count, expected):
    assert strip_frames(n, count) == expected


@pytest.mark.parametrize("n", [9, 10, 13, 17, 40, 101])
@pytest.mark.parametrize("count", [2, 3, 8])
def test_strip_frames_properties(n, count):
    chosen = strip_frames(n, count)
    assert len(chosen) == count
    assert chosen[0] == 0 and chosen[-1] == n - 1
    gaps = np.diff(chosen)
    assert np.all(gaps >= 1)  # strictly increasing, hence unique
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    assert strip_frames(n, count) == chosen


def test_strip_frames_rejects_bad_input():
    with pytest.raises(ValueError, match="n_frames"):
        strip_frames(0)
    with pytest.raises(ValueError, match="count"):
        strip_frames(5, count=1)


@pytest.mark.parametrize("n_chosen, rows", [(3, 1), (4, 1), (6, 2), (8, 2)])
def test_zoom_strip_layout_and_labels(tmp_path, n_chosen, rows):
    depths = [0.3 * k for k in range(20)]
    chosen = strip_frames(20, n_chosen)
    images = {k: np.full((6, 6, 3), 10 * k, dtype=np.uint8) for k in chosen}
    fig = save_figure(
        zoom_strip_figure(images, depths, "tanh · zoom"), tmp_path / "s.pdf", tmp_path / "s.png"
    )
    assert (tmp_path / "s.pdf").read_bytes().startswith(PDF_MAGIC)
    assert (tmp_path / "s.png").read_bytes().startswith(PNG_MAGIC)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == n_chosen
    assert all(len(ax.get_images()) == 1 for ax in shown)
    assert all(ax.get_xticks().size == 0 and ax.get_yticks().size == 0 for ax in shown)
    assert {ax.get_subplotspec().get_geometry()[0] for ax in shown} == {rows}
    assert fig.get_suptitle() == "tanh · zoom"
    if n_chosen == 8:
        # strip_frames(20, 8) picks frames 0, 3, 5, 8, 11, 14, 16, 19; frame 19 lies 5.7 decades deep.
        assert shown[0].get_title() == "frame 0 · 0.0 decades"
        assert shown[2].get_title() == "frame 5 · 1.5 decades"
        assert shown[-1].get_title() == "frame 19 · 5.7 decades"
        assert shown[-1].get_images()[0].get_array()[0, 0, 0] == 190


def test_zoom_strip_label_format_and_checks():
    fig = zoom_strip_figure({12: np.zeros((2, 2, 3), np.uint8)}, [0.3] * 12 + [3.6], None)
    assert fig.axes[0].get_title() == "frame 12 · 3.6 decades"
    with pytest.raises(ValueError, match="depths"):
        zoom_strip_figure({5: np.zeros((2, 2, 3), np.uint8)}, [0.0, 1.0], None)
    with pytest.raises(ValueError, match="images"):
        zoom_strip_figure({}, [0.0], None)


# --------------------------------------------------------------------------- per-frame slopes


def test_frame_slope_summary_by_hand():
    estimate = DimensionEstimate(
        median=1.5,
        q25=1.2,
        q75=2.0,
        n_slopes=8,
        box_counts=box_counts_with_slopes(
            [1.0, 2.0, np.nan, 4.0, 3.0],  # finite 1, 2, 3, 4
            [np.nan, np.nan],  # none
            [1.5],
            [1.8, 1.2, 1.5],
        ),
    )
    first, empty, single, last = frame_slope_summary(estimate)
    # Sorted 1, 2, 3, 4: median 2.5; linear quartiles at positions 0.75 and 2.25.
    assert (first.median, first.q25, first.q75) == pytest.approx((2.5, 1.75, 3.25))
    assert (first.min, first.max, first.n_slopes) == (1.0, 4.0, 4)
    assert empty.n_slopes == 0
    assert all(math.isnan(getattr(empty, k)) for k in ("median", "q25", "q75", "min", "max"))
    assert single == FrameSlopes(1.5, 1.5, 1.5, 1.5, 1.5, 1)
    # Sorted 1.2, 1.5, 1.8: quartiles halfway between neighbours.
    assert (last.median, last.q25, last.q75) == pytest.approx((1.5, 1.35, 1.65))
    assert (last.min, last.max, last.n_slopes) == (1.2, 1.8, 3)


def test_frame_slopes_round_trip():
    summary = FrameSlopes(1.5, 1.25, 1.75, 1.0, 2.0, 4)
    assert FrameSlopes.from_dict(summary.to_dict()) == summary
    empty = FrameSlopes(*[float("nan")] * 5, 0).to_dict()
    assert empty == {"median": None, "q25": None, "q75": None, "min": None, "max": None, "n_slopes": 0}
    assert math.isnan(FrameSlopes.from_dict(empty).median)


# --------------------------------------------------------------------------- dimension against depth


def depth_summaries():
    depths = [0.0, 0.6, 1.2, 1.8, 2.4]
    summaries = [
        FrameSlopes(1.60, 1.50, 1.70, 1.30, 1.90, 6),
        FrameSlopes(*[float("nan")] * 5, 0),  # a frame without boundary
        FrameSlopes(1.55, 1.45, 1.65, 1.20, 1.80, 6),
        FrameSlopes(1.70, 1.60, 1.75, 1.50, 1.95, 5),
        FrameSlopes(1.65, 1.55, 1.72, 1.40, 1.85, 6),
    ]
    return depths, summaries


def test_dimension_depth_figure_points_spread_and_lines(tmp_path):
    depths, summaries = depth_summaries()
    figure = dimension_depth_figure(depths, summaries, 1.6234, 1.66, "tanh full batch")
    fig = save_figure(figure, tmp_path / "d.pdf", tmp_path / "d.png")
    assert (tmp_path / "d.pdf").read_bytes().startswith(PDF_MAGIC)
    assert (tmp_path / "d.png").read_bytes().startswith(PNG_MAGIC)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "depth (decades of zoom)"
    assert ax.get_ylabel() == "box-counting dimension"
    assert ax.get_title() == "tanh full batch"
    point_lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in point_lines) == 4  # frame 1 has no slopes
    (errorbars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    data_line = errorbars.lines[0]
    np.testing.assert_allclose(data_line.get_xdata(), [0.0, 1.2, 1.8, 2.4])
    np.testing.assert_allclose(data_line.get_ydata(), [1.60, 1.55, 1.70, 1.65])
    # q25-q75 bars: one segment per plotted frame, from q25 to q75.
    (iqr,) = errorbars.lines[2]
    np.testing.assert_allclose(
        [seg[:, 1] for seg in iqr.get_segments()], [[1.5, 1.7], [1.45, 1.65], [1.6, 1.75], [1.55, 1.72]]
    )
    # min-max bars, one per plotted frame.
    (ranges,) = [c for c in ax.collections if isinstance(c, LineCollection) and c is not iqr]
    np.testing.assert_allclose(
        sorted(tuple(seg[:, 1]) for seg in ranges.get_segments()),
        sorted([(1.3, 1.9), (1.2, 1.8), (1.5, 1.95), (1.4, 1.85)]),
    )
    flat = {
        round(float(line.get_ydata()[0]), 4): line
        for line in ax.get_lines()
        if np.ptp(line.get_ydata()) == 0 and len(line.get_ydata()) == 2
    }
    assert flat[1.6234].get_linestyle() == "-"
    assert flat[1.66].get_linestyle() == "--"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("1.623" in t for t in legend) and any("1.66" in t for t in legend)
    assert any(t.get_text() == "1.623" for t in ax.texts)  # the sequence line carries its value


def test_dimension_depth_without_paper_or_slopes(tmp_path):
    depths, summaries = depth_summaries()
    fig = dimension_depth_figure(depths, summaries, 1.6, None, None)
    (ax,) = fig.axes
    assert not [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    empty = [FrameSlopes(*[float("nan")] * 5, 0)] * 3
    fig = save_figure(
        dimension_depth_figure([0, 1, 2], empty, float("nan"), 1.66, "x"),
        tmp_path / "e.pdf",
        tmp_path / "e.png",
    )
    (ax,) = fig.axes
    assert not [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert (tmp_path / "e.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="depths and summaries"):
        dimension_depth_figure([0.0], summaries, 1.6, None, None)


def test_no_stray_images_in_depth_figure():
    depths, summaries = depth_summaries()
    (ax,) = dimension_depth_figure(depths, summaries, 1.6, 1.66, None).axes
    assert not [a for a in ax.get_children() if isinstance(a, AxesImage)]


# --------------------------------------------------------------------------- table


def test_dimension_table_decades_column():
    rows = [
        dict(
            experiment="tanh_full",
            title="tanh full batch",
            dimension=1.65,
            q25=1.6,
            q75=1.7,
            paper_dimension=1.66,
            resolution=256,
            frames=4,
            decades=3 * math.log10(10),  # 4 frames, each 10 times narrower
        ),
        dict(
            experiment="relu",
            title="ReLU",
            dimension=1.2,
            q25=1.1,
            q75=1.3,
            paper_dimension=None,
            resolution=64,
            frames=1,
            decades=0.0,
        ),
        dict(
            experiment="tanh_n1",
            title="tanh dataset size 1",
            dimension=1.2,
            q25=1.1,
            q75=1.3,
            paper_dimension=None,
            resolution=64,
            frames=12,
            decades=11 * math.log10(2),  # 3.311 decades
        ),
    ]
    csv_text, md_text = dimension_table(rows)
    table = list(csv.DictReader(io.StringIO(csv_text)))
    header = csv_text.splitlines()[0].split(",")
    assert header[header.index("frames") + 1] == "decades"
    assert [r["decades"] for r in table] == ["3.0000", "0.0000", "3.3113"]
    lines = md_text.splitlines()
    assert lines[0].endswith("| resolution | frames | decades |")
    assert lines[1].count("|") == 13  # the separator row has a cell for each of the 12 columns
    assert lines[2].endswith("| 256×256 | 4 | 3.0 |")
    assert lines[3].endswith("| 64×64 | 1 | 0.0 |")
    assert lines[4].endswith("| 12 | 3.3 |")


def test_the_depth_figure_shows_each_frames_edge_pixels():
    depths = [0.0, 0.3, 0.6]
    summaries = [FrameSlopes(1.2, 1.1, 1.3, 1.0, 1.4, 5)] * 3
    fig = dimension_depth_figure(depths, summaries, 1.2, None, None, edges=[90, 0, 1500], resolution=96)
    slopes, edges = fig.axes
    (line,) = [line for line in edges.get_lines() if line.get_marker() == "o"]
    np.testing.assert_array_equal(line.get_xdata(), depths)
    np.testing.assert_array_equal(line.get_ydata(), [90, 0.5, 1500])  # a frame without edges: at the bottom
    assert edges.get_yscale() == "log" and edges.get_ylabel() == "edge pixels"
    assert any(line.get_ydata()[0] == 96 for line in edges.get_lines() if line.get_linestyle() == ":")
    assert slopes.get_xlabel() == "" and edges.get_xlabel() == "depth (decades of zoom)"
    with pytest.raises(ValueError, match="one entry per frame"):
        dimension_depth_figure(depths, summaries, 1.2, None, None, edges=[1, 2])


def test_box_count_records_the_edge_pixels():
    image = np.zeros((40, 40), bool)
    image[10, :] = True
    bc = box_count(image)
    assert bc.pixels == 40 and BoxCount.from_dict(bc.to_dict()).pixels == 40


def test_a_double_double_sequence_marks_the_float64_limit_in_both_panels():
    depths, summaries = depth_summaries()
    fig = dimension_depth_figure(
        depths, summaries, 1.6, None, None, edges=[90, 0, 95, 120, 130], float64_limit=1.5
    )
    for ax in fig.axes:
        verticals = [line for line in ax.get_lines() if np.ptp(line.get_xdata()) == 0]
        assert [line.get_xdata()[0] for line in verticals] == [1.5]
        assert verticals[0].get_linestyle() == ":"
    assert "float64 limit" in [t.get_text() for t in fig.axes[0].texts]
    plain = dimension_depth_figure(depths, summaries, 1.6, None, None, edges=[90, 0, 95, 120, 130])
    assert not [line for ax in plain.axes for line in ax.get_lines() if np.ptp(line.get_xdata()) == 0]


def test_a_frame_narrower_than_float64_gets_precise_axes():
    from trainability.contract import grid

    centre = ["1.2345678901234567890123", "0.5"]
    window = grid.concentric_window_precise([[-3, 6], [-3, 6]], 10, 25, centre)
    assert float(window[0][0]) == float(window[0][1])  # float64 cannot tell the bounds apart
    fig = frame_panel_figure(np.arange(16.0).reshape(4, 4), window, "lr_vs_lr", None)
    (ax,) = fig.axes
    assert ax.get_xlim() == (0.0, 1.0)
    # Too many digits for two tick labels side by side: the axis names its middle, the ticks
    # the offsets from it (log10 units).
    assert [t.get_text() for t in ax.get_xticklabels()] == ["d = \u22124.5e-25", "+4.5e-25"]
    assert ax.get_xlabel() == "Input layer learning rate: 10^(c + d)\nc = 1.2345678901234567890123"
    # A precise window float64 still resolves keeps absolute ticks, with enough digits.
    shallow = grid.concentric_window_precise([[-3, 6], [-3, 6]], 10, 3, centre)
    (ax,) = frame_panel_figure(np.arange(16.0).reshape(4, 4), shallow, "lr_vs_lr", None).axes
    low, high = (t.get_text() for t in ax.get_xticklabels())
    assert low.startswith("1.698") and low.endswith("e+1") and low != high and len(low) <= 20
