"""Mapping the fractal boundary of neural-network trainability.

Library behind the Snakemake workflow. Imports go one way, bottom to top:

* numpy-only contract: ``numerics`` (correctly rounded 10**x and logarithms
  with gmpy2, fixed-order sin and cos: the same bits on every CPU), ``statistics``
  (what kernels return), ``problem``
  (the network, its data, the per-pixel hyperparameters), ``optimizers``
  (gd, momentum, Adam: their update rules), ``randomness`` (per-pixel draws),
  ``phase_space`` (what each axis sets), ``grid``, ``dimension`` (box
  counting), ``uncertainty`` (the uncertainty exponent), ``line_dimension``
  (Liu's 1-D estimator), ``one_dimensional`` (Liu's 1-D control, trained in
  numpy), ``scoring``, ``agreement``, ``centre``, ``arithmetic`` (which
  arithmetic computed a shard), ``model_checks``;
* ``kernels`` (torch): the dispatcher and one module per backend; ``training``
  and ``estimators`` (every point trained through one path);
* files, configuration and output: ``io``, ``integrity``, ``reuse``, ``config``,
  ``figures`` (with ``uncertainty_figures``, ``line_figures``), ``tables``,
  ``archive``, ``provenance``, ``cluster``, ``faults``, ``cli``; the Snakemake
  adapters in workflow/scripts/ on top.
"""

__version__ = "0.1.0"

# Bump when a change to the package alters training results: it is a rule
# parameter, so Snakemake reruns the affected shards (imported code is not
# otherwise tracked by Snakemake's rerun triggers).
RESULTS_VERSION = 3
