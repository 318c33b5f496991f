"""Mapping the fractal boundary of neural-network trainability.

Library behind the Snakemake workflow. Imports go one way, bottom to top:

* numpy-only contract: ``statistics`` (what kernels return), ``problem``
  (the network, its data, the per-pixel hyperparameters), ``grid``,
  ``dimension``, ``scoring``, ``agreement``, ``centre``, ``arithmetic``
  (which arithmetic computed a shard);
* ``kernels`` (torch): the dispatcher and one module per backend;
* files, configuration and output: ``io``, ``integrity``, ``config``,
  ``figures``, ``tables``, ``archive``, ``provenance``, ``cluster``,
  ``faults``, ``cli``; the Snakemake adapters in workflow/scripts/ on top.
"""

__version__ = "0.1.0"

# Bump when a change to the package alters training results: it is a rule
# parameter, so Snakemake reruns the affected shards (imported code is not
# otherwise tracked by Snakemake's rerun triggers).
RESULTS_VERSION = 2
