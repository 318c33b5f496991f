# ---------------------------------------------------------------------------
# Each job's resources (memory, runtime), estimated from its experiment's work and
# grown on each retry. Code: trainability/ops/resources.py (frame and sequence jobs).
# Tests: tests/workflow/test_resources.py, tests/slurm/test_slurm.py.
# ---------------------------------------------------------------------------
import math
import os

from trainability.contract import problem as tproblem
from trainability.ops import resources as tresources


def shard_work(exp, pixels=None):
    """(pixels, dataset size, floating-point operations) of one shard of an experiment
    (or of ``pixels`` points); the 1-D model counts as one data point and parameter."""
    g = exp["grid"]
    pixels = min(g["shard_size"], g["resolution"] ** 2) if pixels is None else pixels
    if tproblem.model_kind(exp["model"]) != "mlp":
        return pixels, 1, 30.0 * pixels * exp["training"]["steps"]
    n_data = tproblem.dataset_size_of(exp)
    model, target = exp["model"], exp["data"].get("target_dim", 1)
    params = tproblem.n_parameters(model, target)
    # forward + backward ~ 6 flops per parameter per data point per step
    flops = 6.0 * params * n_data * pixels * exp["training"]["steps"]
    return pixels, n_data, flops


def train_mem_mb(wildcards, attempt):
    """Host memory of a shard job: work arrays of one 256-pixel block, shard results, headroom."""
    exp = experiment(wildcards)
    pixels, n_data, _ = shard_work(exp)
    work = 8 * n_data * exp["model"].get("width", 1) * 256 * 8 + 16 * 8 * pixels
    return int((1000 + work / 2**20) * attempt)


def train_runtime(wildcards, attempt):
    """Minutes, from the shard's work at an assumed speed; doubled on each retry.

    TRAINABILITY_EXPECTED_GFLOPS is the float64 speed to plan for (default 10,
    a laptop CPU; a data-centre GPU sustains thousands): a runtime setting, so
    it is read from the environment and never triggers reruns.
    """
    return _points_runtime(experiment(wildcards), None, attempt)


def _points_runtime(exp, points, attempt):
    """Minutes for ``points`` points of ``exp`` (None: one shard's pixels)."""
    _, _, flops = shard_work(exp, points)
    gflops = float(os.environ.get("TRAINABILITY_EXPECTED_GFLOPS", "10"))
    return int(math.ceil((10 + flops / (gflops * 1e9) / 60) * 2 ** (attempt - 1)))


def uncertainty_runtime(wildcards, attempt):
    """Minutes of the uncertainty job: each point and a partner per epsilon (<= ~16 decades)."""
    exp = experiment(wildcards)
    u = exp["uncertainty"]
    return _points_runtime(exp, u["points"] * (1 + 16 * u["per_decade"]), attempt)


def line_runtime(wildcards, attempt):
    exp = experiment(wildcards)
    return _points_runtime(exp, 2 ** exp["line"]["points_log2"] + 1, attempt)


def frame_pixels(wildcards):
    return experiment_named(wildcards.experiment)["grid"]["resolution"] ** 2


def frame_mem_mb(wildcards, attempt):
    """Memory of a job holding one frame (trainability/ops/resources.py): scales with the grid."""
    return tresources.frame_job_mem_mb(frame_pixels(wildcards), attempt)


def frame_runtime(wildcards, attempt):
    return tresources.frame_job_runtime(frame_pixels(wildcards), attempt)


def sequence_mem_mb(wildcards, attempt):
    """Memory of the dimension job: one frame's arrays, every frame's edge map."""
    n = len(frames(wildcards.experiment))
    return tresources.dimension_mem_mb(frame_pixels(wildcards), n, attempt)


def sequence_runtime(wildcards, attempt):
    n = len(frames(wildcards.experiment))
    return tresources.frame_job_runtime(frame_pixels(wildcards), attempt, frames=n)
