"""The contract: what is computed, in numpy alone (and MPFR for correctly rounded powers).

``numerics`` (10**x and logarithms correctly rounded, sin and cos in a fixed order: the same
bits on every CPU), ``statistics`` (the per-pixel statistics every kernel returns),
``problem`` (the network, its data, the per-pixel hyperparameters), ``optimizers`` (gd,
momentum, Adam: names, hyperparameters, update rules), ``randomness`` (per-pixel draws),
``phase_space`` (what each axis sets), ``grid`` (axes, zoom-frame windows, precision limits,
shards). Imports nothing of the package outside this folder; no torch.
"""
