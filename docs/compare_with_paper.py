"""Put the paper's Figure 1 and our six-panel figure side by side (for the README).

Usage: .venv/bin/python docs/compare_with_paper.py results/summary/six_panel.png docs/paper_vs_default.png
"""

import sys

import matplotlib.image as mpimg
from matplotlib.figure import Figure

from trainability.results.files import atomic_path


def main(ours_path: str, out_path: str, paper_path: str = "docs/paper_figure1.png") -> None:
    fig = Figure(figsize=(16, 10.5), layout="constrained")
    for ax, path, title in zip(
        fig.subplots(1, 2),
        (paper_path, ours_path),
        ("Paper, Figure 1 (4096 x 4096 px)", "This workflow, default config (64 x 64 px)"),
    ):
        ax.imshow(mpimg.imread(path))
        ax.set_title(title, fontsize=14)
        ax.axis("off")
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=90)


if __name__ == "__main__":
    main(*sys.argv[1:])
