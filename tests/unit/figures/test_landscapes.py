"""trainability.figures.landscapes and .tables: tick labels, landscapes, panels, tables, files."""

from __future__ import annotations

import csv
import io
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from trainability.boundary.box_counting import edge_map, fractal_dimension
from trainability.boundary.scoring import rank_colour_values
from trainability.figures.landscapes import (
    axis_labels,
    boxcount_figure,
    extreme_tick_labels,
    landscape_figure,
    panel_title,
    six_panel_figure,
)
from trainability.figures.style import save_figure
from trainability.figures.tables import dimension_table, write_dimension_table

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Tick labels read off paper_figure1.png: (x min, x max, y min, y max) per panel.
PAPER_TICK_LABELS = {
    "deep_linear": ("1.90010080e+2", "1.90011840e+2", "4.77745244e+0", "4.77749670e+0"),
    "relu": ("5.77622737e-1", "5.77625590e-1", "8.14432439e+1", "8.14436463e+1"),
    "tanh_n1": ("4.8298735e+1", "4.8299146e+1", "1.82066141e+1", "1.82067690e+1"),
    "tanh_minibatch": (
        "2.67398835471957e-1",
        "2.67398835475071e-1",
        "1.74269509700711e+2",
        "1.74269509702741e+2",
    ),
    "tanh_full": ("1.329976231e+1", "1.329978604e+1", "2.003582269e+2", "2.003585844e+2"),
    "param_init": ("1.960618282403e-1", "1.960618285243e-1", "3.90254607863e+1", "3.90254608429e+1"),
}


def log10_inside_label(label: str) -> float:
    """log10 of the middle of the interval of values a truncated label stands for.

    The figure's labels are truncations of the true window edges, so any value
    in [label, label + one unit of its last digit) yields that label; the middle
    keeps clear of round-off in 10**log10(x).
    """
    mantissa, exponent = label.split("e")
    decimals = len(mantissa.split(".")[1])
    value = (Decimal(mantissa) + Decimal(5) * Decimal(10) ** (-decimals - 1)) * Decimal(10) ** int(exponent)
    return float(value.log10())


def synthetic_landscape(n: int, seed: int, roughness: int) -> np.ndarray:
    """A smooth random field signed into converged (<0) and diverged (>0) regions."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] / n
    field = np.zeros((n, n))
    for k in range(2 + 6 * roughness):
        a = rng.normal(size=2) * (k + 1) * 3
        field += np.sin(a[0] * x + a[1] * y + rng.uniform(0, 2 * np.pi)) / (k + 1) ** 0.8
    return np.where(field < 0, -np.exp(2 + 3 * np.abs(field)), np.exp(np.abs(field)))


def six_synthetic_panels(n: int = 96) -> list[dict]:
    titles = [
        ("deep_linear", "Deep linear full batch", "lr_vs_lr"),
        ("relu", "ReLU full batch", "lr_vs_lr"),
        ("tanh_n1", "tanh dataset set size 1", "lr_vs_lr"),
        ("tanh_minibatch", "tanh minibatch", "lr_vs_lr"),
        ("tanh_full", "tanh full batch", "lr_vs_lr"),
        ("param_init", "Parameter initialization", "paraminit_vs_lr"),
    ]
    panels = []
    for k, (key, title, phase_space) in enumerate(titles):
        labels = PAPER_TICK_LABELS[key]
        values = synthetic_landscape(n, k, k)
        panels.append(
            dict(
                values=values,
                x_bounds=(log10_inside_label(labels[0]), log10_inside_label(labels[1])),
                y_bounds=(log10_inside_label(labels[2]), log10_inside_label(labels[3])),
                phase_space=phase_space,
                title=title,
                dimension=fractal_dimension([edge_map(values)]).median,
            )
        )
    return panels


def tick_texts(ax) -> tuple[list[str], list[str]]:
    return [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]


# --------------------------------------------------------------------------- ticks


@pytest.mark.parametrize("panel", sorted(PAPER_TICK_LABELS))
def test_tick_labels_match_paper_figure(panel):
    x_lo, x_hi, y_lo, y_hi = PAPER_TICK_LABELS[panel]
    assert extreme_tick_labels(log10_inside_label(x_lo), log10_inside_label(x_hi)) == (x_lo, x_hi)
    assert extreme_tick_labels(log10_inside_label(y_lo), log10_inside_label(y_hi)) == (y_lo, y_hi)


def test_tick_labels_other_cases():
    # Different exponents: four significant digits.
    assert extreme_tick_labels(-3, 6) == ("1.000e-3", "1.000e+6")
    # Same exponent, leading digit differs.
    assert extreme_tick_labels(math.log10(2.5), math.log10(7.25)) == ("2.500e+0", "7.250e+0")
    # Exponents of two digits are written in full.
    assert extreme_tick_labels(12.1, 12.2) == ("1.2589e+12", "1.5848e+12")
    # Identical values keep every digit instead of failing.
    assert extreme_tick_labels(0.5, 0.5) == ("3.162277660168380e+0",) * 2


def test_axis_labels():
    assert axis_labels("lr_vs_lr") == ("Input layer learning rate", "Output layer learning rate")
    assert axis_labels("paraminit_vs_lr") == ("Input layer weight offset", "Learning rate")
    with pytest.raises(ValueError):
        axis_labels("nope")


# --------------------------------------------------------------------------- landscape


def test_landscape_image_ticks_and_alignment():
    values = synthetic_landscape(40, 0, 1)
    labels = PAPER_TICK_LABELS["relu"]
    x_bounds = (log10_inside_label(labels[0]), log10_inside_label(labels[1]))
    y_bounds = (log10_inside_label(labels[2]), log10_inside_label(labels[3]))
    fig = landscape_figure(values, x_bounds, y_bounds, "lr_vs_lr", "ReLU")
    (ax,) = fig.axes
    (image,) = ax.get_images()
    np.testing.assert_allclose(image.get_array(), rank_colour_values(values))
    assert image.get_cmap().name == "Spectral"
    assert image.norm.vmin == -1 and image.norm.vmax == 1
    assert image.origin == "lower"
    np.testing.assert_allclose(image.get_extent(), [*x_bounds, *y_bounds])
    xs, ys = tick_texts(ax)
    assert xs == list(labels[:2]) and ys == list(labels[2:])
    xt, yt = ax.get_xticklabels(), ax.get_yticklabels()
    assert [t.get_horizontalalignment() for t in xt] == ["left", "right"]
    assert [t.get_verticalalignment() for t in yt] == ["bottom", "top"]
    assert all(t.get_rotation() == 90 for t in yt)
    assert ax.get_xlabel() == "Input layer learning rate"
    assert ax.get_ylabel() == "Output layer learning rate"
    assert ax.get_title() == "ReLU"


def test_colour_map_properties_on_a_landscape():
    values = synthetic_landscape(64, 3, 2)
    c = rank_colour_values(values)
    order = np.argsort(values, axis=None)
    assert np.all(np.diff(c.ravel()[order]) <= 1e-15)  # monotone in the value
    assert np.all(np.sign(c) == -np.sign(values))  # blue (>0) = converged (<0)
    assert np.all((np.abs(c) >= 0.25) & (np.abs(c) <= 1.0))


def test_a_landscape_is_written_as_valid_files(tmp_path):
    pdf, png = tmp_path / "sub" / "land.pdf", tmp_path / "sub" / "land.png"
    fig = save_figure(
        landscape_figure(synthetic_landscape(32, 1, 1), (0.0, 1.0), (2.0, 3.0), "paraminit_vs_lr", "t"),
        pdf,
        png,
        dpi=60,
    )
    assert isinstance(fig, Figure)
    assert pdf.read_bytes().startswith(PDF_MAGIC)
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in pdf.parent.iterdir()) == ["land.pdf", "land.png"]  # no temp left


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def explode(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", explode)
    with pytest.raises(RuntimeError):
        save_figure(landscape_figure(np.ones((4, 4)), (0, 1), (0, 1), "lr_vs_lr"), tmp_path / "a.pdf", None)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- box counting plot


def test_boxcount_plot_is_written(tmp_path):
    frames = [edge_map(synthetic_landscape(128, k, 2)) for k in range(3)]
    frames.append(np.zeros((128, 128), dtype=bool))  # counts of 0 must not break the plot
    estimate = fractal_dimension(frames)
    fig = save_figure(boxcount_figure(estimate), tmp_path / "bc.pdf", tmp_path / "bc.png")
    assert (tmp_path / "bc.pdf").read_bytes().startswith(PDF_MAGIC)
    assert (tmp_path / "bc.png").read_bytes().startswith(PNG_MAGIC)
    ax_count, ax_slope = fig.axes
    assert ax_count.get_xscale() == ax_count.get_yscale() == "log"
    assert len(ax_count.get_lines()) == 4
    (legend_text,) = [t.get_text() for t in ax_slope.get_legend().get_texts()]
    assert f"{estimate.median:.3f}" in legend_text
    median_lines = [line for line in ax_slope.get_lines() if np.allclose(line.get_ydata(), estimate.median)]
    assert median_lines


# --------------------------------------------------------------------------- six panels


def test_panel_title():
    assert panel_title("tanh full batch", 1.6612) == "tanh full batch (fractal dim 1.66)"
    assert panel_title("x", 1.23) == "x (fractal dim 1.23)"
    assert panel_title("x", None) == "x (fractal dim n/a)"
    assert panel_title("x", float("nan")) == "x (fractal dim n/a)"


def test_six_panel_layout_and_files(tmp_path):
    panels = six_synthetic_panels()
    panels[0]["dimension"] = 1.23
    pdf, png = tmp_path / "six.pdf", tmp_path / "six.png"
    fig = save_figure(six_panel_figure(panels), pdf, png)
    assert pdf.read_bytes().startswith(PDF_MAGIC)
    assert png.read_bytes().startswith(PNG_MAGIC)
    axes = fig.axes
    assert len(axes) == 6
    # 3 rows x 2 columns, filled row by row.
    geometry = [ax.get_subplotspec().get_geometry()[:2] for ax in axes]
    assert all(g == (3, 2) for g in geometry)
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "Deep linear full batch (fractal dim 1.23)"
    assert all("(fractal dim " in t for t in titles)
    assert all(ax.title.get_fontweight() in ("bold", 700) for ax in axes)
    for ax, key in zip(axes, PAPER_TICK_LABELS):
        xs, ys = tick_texts(ax)
        assert xs + ys == list(PAPER_TICK_LABELS[key])
    assert axes[5].get_xlabel() == "Input layer weight offset"
    assert axes[5].get_ylabel() == "Learning rate"


@pytest.mark.parametrize("n_panels, rows", [(1, 1), (3, 2), (8, 4)])
def test_any_number_of_panels(n_panels, rows):
    panels = [
        dict(
            values=synthetic_landscape(24, k, 1),
            x_bounds=(0, 1),
            y_bounds=(0, 1),
            phase_space="lr_vs_lr",
            title=f"p{k}",
            dimension=1.5,
        )
        for k in range(n_panels)
    ]
    fig = six_panel_figure(panels)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n_panels
    assert fig.axes[0].get_subplotspec().get_geometry()[0] == rows
    with pytest.raises(ValueError):
        six_panel_figure([])


# --------------------------------------------------------------------------- table


TABLE_ROWS = [
    dict(
        experiment="tanh_full",
        title="tanh full batch",
        dimension=1.6612,
        q25=1.60,
        q75=1.71,
        paper_dimension=1.66,
        resolution=1024,
        frames=8,
        decades=7 * math.log10(2),
    ),
    dict(
        experiment="lm|mix",
        title="Extension",
        dimension=1.9,
        q25=1.85,
        q75=1.95,
        paper_dimension=None,
        resolution="512x512",
        frames=1,
        decades=0.0,
    ),
]


def test_dimension_table_contents():
    csv_text, md_text = dimension_table(TABLE_ROWS)
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert list(rows[0]) == [
        "experiment",
        "condition",
        "ours",
        "q25",
        "q75",
        "uncertainty",
        "uncertainty_low",
        "uncertainty_high",
        "line",
        "paper",
        "difference",
        "resolution",
        "frames",
        "decades",
    ]
    assert rows[0]["ours"] == "1.6612" and rows[0]["paper"] == "1.66"
    assert float(rows[0]["difference"]) == pytest.approx(0.0012)
    assert rows[1]["paper"] == "" and rows[1]["difference"] == ""
    lines = md_text.strip().splitlines()
    assert lines[0].startswith("| experiment | condition | box count | spread")
    assert (
        "| tanh_full | tanh full batch | 1.66 | 1.60–1.71 | — |  | — | 1.66 | +0.00 | 1024×1024 | 8 | 2.1 |"
        in lines
    )
    assert "lm\\|mix" in lines[3] and "—" in lines[3]


def test_a_dimension_that_cannot_be_measured_says_why_in_the_table():
    """Resolution 4 used to show 0.00 with a spread of -0.00 to -0.00."""
    reason = "resolution 4 < 12, the smallest at which box counting has 2 box sizes"
    row = dict(TABLE_ROWS[0], dimension=None, q25=None, q75=None, dimension_reason=reason)
    csv_text, md_text = dimension_table([row])
    assert f"| tanh_full | tanh full batch | n/a ({reason}) |  |" in md_text
    assert next(csv.DictReader(io.StringIO(csv_text)))["ours"] == ""


def test_write_dimension_table(tmp_path):
    write_dimension_table(TABLE_ROWS, tmp_path / "t.csv", tmp_path / "t.md")
    assert (tmp_path / "t.csv").read_text().startswith("experiment,condition,ours")
    assert (tmp_path / "t.md").read_text().startswith("| experiment")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.md"]


def test_boxcount_plot_of_a_frame_without_boundary(tmp_path):
    """A frame where every pixel trains has zero counts everywhere: the plot must still be made."""
    estimate = fractal_dimension([edge_map(-np.ones((12, 12)))])
    save_figure(boxcount_figure(estimate), tmp_path / "b.pdf", tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
