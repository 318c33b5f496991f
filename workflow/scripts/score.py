"""Snakemake adapter: per-pixel convergence measures from the merged statistics."""

import logging
import sys

import numpy as np

from trainability.boundary import scoring
from trainability.contract import statistics
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

stats, attrs = files.read_h5(snakemake.input[0], statistics.STAT_FIELDS)
x_y, _ = files.read_h5(snakemake.input[0], ["x", "y"])
measures = {name: fn(stats) for name, fn in scoring.MEASURES.items()}
label = snakemake.params.label
trainable = scoring.trainable(label, measures[label])
files.write_h5(
    snakemake.output[0],
    {**measures, "trainable": trainable.astype(np.uint8)},
    attrs={key: attrs[key] for key in ("experiment", "frame", "window_log10", "resolution")},
    scales={"x": ("log10 x", x_y["x"]), "y": ("log10 y", x_y["y"])},
)
logging.info("%.1f%% of pixels trainable", 100 * trainable.mean())
