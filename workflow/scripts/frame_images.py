"""Snakemake adapter: one zoom frame as a native-resolution image and as a panel with axes."""

import logging
import sys

from trainability.figures import style, zoom
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

frame = snakemake.params.frame
measure = frame["measure"]  # the label measure of its model kind
scores, attrs = files.read_h5(snakemake.input[0], [measure])
values = scores[measure]
logging.info("frame %d: %s grid, window %s", frame["frame"], values.shape, attrs["window_log10"])
zoom.save_frame_image(values, snakemake.output.image)
title = f"{frame['title']} · {zoom.frame_label(frame['frame'], frame['decades'])}"
panel = zoom.frame_panel_figure(values, attrs["window_log10"], frame["phase_space"], title)
style.save_figure(panel, snakemake.output.panel)
