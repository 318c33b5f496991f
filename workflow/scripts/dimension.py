"""Snakemake adapter: box-counting dimension of the boundary, per frame and over all frames."""

import logging
import sys

from trainability.boundary import box_counting, pilots
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

measure = snakemake.params.measure
sequence = snakemake.params.sequence
edges = []
for path in snakemake.input:
    data, _ = files.read_h5(path, [measure])
    edges.append(box_counting.edge_map(data[measure]))

# Every frame of a sequence is concentric about its centre: one without boundary in
# its central region means the centre is off the boundary at that scale. An error
# for a centre meant to be on it (auto or given), a warning for the window's middle.
off_boundary = []
if len(edges) > 1:
    off_boundary = [frame for frame, e in enumerate(edges) if pilots.central_edges(e) == 0]
    if off_boundary:
        message = (
            f"experiment {snakemake.wildcards.experiment}: frames {off_boundary} hold no boundary in their "
            f"central region (the middle {pilots.CENTRAL_FRACTION:.0%} of each axis): the zoom centre is "
            f"off the boundary at those scales; use zoom.centre: auto, or a centre on the boundary"
        )
        if sequence["centre_on_boundary"]:
            logging.error(message)
            raise SystemExit(message)
        logging.warning(message)

estimate = box_counting.fractal_dimension(edges)
if estimate.reason:
    logging.warning("experiment %s: no dimension: %s", snakemake.wildcards.experiment, estimate.reason)
files.write_json(
    snakemake.output[0],
    {
        "experiment": snakemake.wildcards.experiment,
        "measure": measure,
        "factor": sequence["factor"],
        "decades": sequence["decades"],
        "frames_off_boundary": off_boundary,
        **estimate.to_dict(),
    },
)
logging.info(
    "fractal dimension %.3f (q25 %.3f, q75 %.3f) from %d frames over %.1f decades",
    estimate.median,
    estimate.q25,
    estimate.q75,
    len(edges),
    sequence["decades"][-1],
)
