"""Analysing a trainability boundary from labels: numpy only, above the contract.

``scoring`` (the paper's convergence measure, labels, the rank colour map),
``box_counting`` (edge maps, box counting: the paper's dimension), ``uncertainty`` (the
uncertainty exponent), ``line_dimension`` (Liu's estimator on a line), ``centre`` (the
automatic zoom centre) with ``pilots`` (its pilot frames: edges, roughness, moves,
bisection). Imports the contract only.
"""
