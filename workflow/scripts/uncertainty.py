"""Snakemake adapter: the uncertainty-exponent dimension of one experiment's window."""

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
result, backend = training.uncertainty_estimate(
    params.training, params.window, params.spec, device=device, kernel=params.kernel
)
kernel = training.kernel_name(backend)
logging.info(
    "kernel %s: %d points x %d epsilons; D = %s (95%%: %s..%s)%s",
    kernel,
    result.n_points,
    result.eps.size,
    result.dimension,
    result.dimension_low,
    result.dimension_high,
    f"; {result.reason}" if result.reason else "",
)
files.write_json(
    snakemake.output[0],
    {
        "experiment": snakemake.wildcards.experiment,
        "window": params.window,
        "kernel": kernel,
        "arithmetic": training.arithmetic_identity(backend, device, params.training),
        **result.to_dict(),
    },
)
