"""Snakemake adapter: Liu's line dimension along one line of an experiment's window."""

import logging
import os
import sys

import torch

from trainability import training
from trainability.kernels import dispatch
from trainability.results import files

sys.stderr = open(snakemake.log[0], "w", buffering=1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

params = snakemake.params
torch.set_num_threads(snakemake.threads)
device = dispatch.resolve_device(os.environ.get("TRAINABILITY_DEVICE", "auto"))
result, labels, backend = training.line_estimate(
    params.training, params.spec, device=device, kernel=params.kernel
)
kernel = training.kernel_name(backend)
logging.info(
    "kernel %s: %d points at y = %s; dimension %s", kernel, labels.size, params.spec["y"], result.dimension
)
files.write_json(
    snakemake.output[0],
    {
        "experiment": snakemake.wildcards.experiment,
        "x": params.spec["x"],
        "y": params.spec["y"],
        "kernel": kernel,
        "arithmetic": training.arithmetic_identity(backend, device, params.training),
        "trainable_fraction": float(labels.mean()),
        **result.to_dict(),
    },
)
