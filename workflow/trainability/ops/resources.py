"""Cluster requests of the per-frame jobs (merge, score, figures, pictures, video), from the work.

Memory is the frame's pixel count times bytes per pixel, plus the interpreter
and its libraries, and grows with each retry. The peaks measured at 4096²
(16.8 M pixels; issue 9) were merge 1.28 GB, score 1.56 GB, figures 1.47 GB:
about 93 bytes per pixel at most. BYTES_PER_PIXEL keeps a third above that.
The dimension job also holds every frame's edge map (one byte per pixel).
Runtimes are not measured: a generous minute per million pixels, doubled on
each retry, so that a slow node never kills a correct job.
"""

from __future__ import annotations

import math

BASE_MB = 500  # Python, numpy, h5py, matplotlib
BYTES_PER_PIXEL = 125
EDGE_BYTES_PER_PIXEL = 1
BASE_MINUTES = 10


def frame_job_mem_mb(pixels: int, attempt: int = 1) -> int:
    """mem_mb of a job that holds one frame's arrays (merge, score, figures, frame pictures)."""
    return int(math.ceil((BASE_MB + pixels * BYTES_PER_PIXEL / 2**20) * attempt))


def dimension_mem_mb(pixels: int, frames: int, attempt: int = 1) -> int:
    """mem_mb of the dimension job: one frame's arrays and the edge maps of all frames."""
    edges = frames * pixels * EDGE_BYTES_PER_PIXEL
    return int(math.ceil((BASE_MB + (pixels * BYTES_PER_PIXEL + edges) / 2**20) * attempt))


def frame_job_runtime(pixels: int, attempt: int = 1, frames: int = 1) -> int:
    """Minutes for a job that reads ``frames`` frames of ``pixels`` each."""
    return int(math.ceil((BASE_MINUTES + frames * pixels / 1e6) * 2 ** (attempt - 1)))
