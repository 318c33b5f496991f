"""SHA-256 of every dataset of every merged grid.h5: the check that a refactor left results bitwise alone.

Usage: .venv/bin/python docs/grid_hashes.py results > hashes.json
Compare with docs/grid_hashes_default_run.json (the default run, `make run`): any difference is
a change of results, which must say so and bump trainability.RESULTS_VERSION.
Each hash covers the dataset's bytes, dtype and shape.
"""

import hashlib
import json
import sys
from pathlib import Path

import h5py


def grid_hashes(results: Path) -> dict[str, str]:
    out = {}
    for path in sorted(results.glob("*/frame*/grid.h5")):
        with h5py.File(path, "r") as h5:
            for name in sorted(h5.keys()):
                data = h5[name][()]
                digest = hashlib.sha256(data.tobytes() + str(data.dtype).encode() + str(data.shape).encode())
                out[f"{path.relative_to(results)}:{name}"] = digest.hexdigest()
    return out


if __name__ == "__main__":
    json.dump(grid_hashes(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
