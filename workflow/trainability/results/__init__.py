"""Result files: writing, checking, reusing and archiving what the workflow computes.

``files`` (atomic HDF5 and JSON files, shards merged, software versions), ``integrity``
(checks of shards, grids, scores and centres before Snakemake plans; moving bad ones aside),
``reuse`` (a shard's pixels copied from its frame's grid when made with exactly its inputs),
``shard_arithmetic`` (which arithmetic computed a shard; may a frame mix them), ``archive``
(archives with a SHA-256 manifest, and their verification), ``provenance`` (an archive's
record of where and how). Imports the contract and the boundary only.
"""
