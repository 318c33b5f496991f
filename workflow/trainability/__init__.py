"""Mapping the fractal boundary of neural-network trainability.

Library behind the Snakemake workflow: ``training`` (the batched kernel),
``grid``, ``problem``, ``config``, ``io``, ``scoring``, ``dimension``,
``figures``.
"""

__version__ = "0.1.0"

# Bump when a change to the package alters training results: it is a rule
# parameter, so Snakemake reruns the affected shards (imported code is not
# otherwise tracked by Snakemake's rerun triggers).
RESULTS_VERSION = 1
