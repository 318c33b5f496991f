"""Snakemake adapter: one zoom frame as a native-resolution image and as a panel with axes."""

import logging
import sys

from trainability import io, zoom_figures

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

frame = snakemake.params.frame
measure = frame["measure"]  # the label measure of its model kind
scores, attrs = io.read_h5(snakemake.input[0], [measure])
values = scores[measure]
logging.info("frame %d: %s grid, window %s", frame["frame"], values.shape, attrs["window_log10"])
zoom_figures.save_frame_image(values, snakemake.output.image)
zoom_figures.save_frame_panel(
    values,
    attrs["window_log10"],
    frame["phase_space"],
    f"{frame['title']} · {zoom_figures.frame_label(frame['frame'], frame['decades'])}",
    snakemake.output.panel,
)
