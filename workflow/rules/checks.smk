# ---------------------------------------------------------------------------
# Checks before anything runs: cluster settings, the kernel, damaged results.
# Code: trainability/cluster.py, trainability/kernels/, trainability/integrity.py.
# Tests: tests/test_faults.py, tests/test_slurm.py.
# ---------------------------------------------------------------------------
from snakemake.logging import logger as _logger

from trainability import cluster as _cluster
from trainability import integrity as _integrity
from trainability.scoring import SCORE_FIELDS
from trainability.statistics import STAT_FIELDS

# Unset $TRAINABILITY_SLURM_* variables of the profile: stop, naming them.
if _unset := _cluster.unset_variables(getattr(workflow, "resource_settings", None)):
    raise WorkflowError(_cluster.unset_variables_message(_unset))

# A kernel named in the config (not `auto`) that cannot run an experiment on a
# device its jobs may use is a config error, before any job: on the device of
# TRAINABILITY_DEVICE when set, else on both CPU and CUDA (a cluster's jobs may
# land on either). torch is imported only then (slow; `auto` never needs it here).
if workflow.is_main_process and config.get("kernel", "auto") != "auto":
    from trainability import kernels as _kernels

    _device = os.environ.get("TRAINABILITY_DEVICE", "auto")
    _types = ["cpu", "cuda"] if _device == "auto" else [_kernels.resolve_device(_device).type]
    if _kernel_problems := _kernels.config_problems(EXPERIMENTS, config["kernel"], _types, Path.cwd()):
        raise WorkflowError(tconfig.ConfigError(_kernel_problems).args[0])

# TRAINABILITY_TRITON_* tuning variables that are set must be valid (they choose the
# GPU kernel's variant in every training job). torch is imported only when one is set.
if workflow.is_main_process and any(k.startswith("TRAINABILITY_TRITON_") for k in os.environ):
    from trainability.kernels import triton_gpu as _triton_gpu

    if _knob_problems := _triton_gpu.knob_problems():
        raise WorkflowError("; ".join(_knob_problems))

# The main process polls SLURM: make it see scancel'ed jobs as failed.
if workflow.is_main_process:
    _cluster.patch_slurm_status_query()


# A result file damaged after it was written (truncated, overwritten, copied from
# another frame) or made with other training parameters is moved aside to
# <name>.corrupt-<time> or <name>.stale-<time>, never deleted, so that Snakemake
# remakes it instead of reading garbage: shards, grid.h5 and scores.h5 (the
# default target asks for every grid and scores file, so a missing one is remade).
# A frame merged before a shard's damage keeps its grid.h5 (merge checked every
# shard); Snakemake then remakes the shard only when that frame is merged again,
# or when asked for it. Only in the process the user started: cluster jobs parse
# this file too, while results are written.
def _expected_results():
    """{path: integrity.Expected} of every result file a later step reads; {shard: its grid}."""
    expected, grid_of = {}, {}
    for name, exp in EXPERIMENTS.items():
        res, size = exp["grid"]["resolution"], exp["grid"]["shard_size"]
        training = tconfig.as_builtin(tconfig.training_params(exp))
        for frame in frames(name):
            whose = {"experiment": name, "frame": frame}
            grid_path = GRID.format(experiment=name, frame=frame)
            for shard, path in enumerate(frame_shards(name, frame)):
                start, stop = tgrid.shard_pixels(shard, res, size)
                where = {**whose, "first_pixel": start, "n_pixels": stop - start, "shard": shard}
                expected[path] = _integrity.Expected(STAT_FIELDS, (stop - start,), where, training)
                grid_of[path] = grid_path
            where = {**whose, "resolution": res}
            expected[grid_path] = _integrity.Expected(STAT_FIELDS, (res, res), where, training)
            scores = SCORES.format(experiment=name, frame=frame)
            expected[scores] = _integrity.Expected(SCORE_FIELDS, (res, res), where)
    return expected, grid_of


if workflow.is_main_process:
    _expected, _grid_of = _expected_results()
    # A dry run reports and moves nothing. Hints repeat the --configfile of this run.
    _dry = _integrity.is_dry_run(sys.argv)
    _configfiles = "".join(f" --configfile {f}" for f in workflow.overwrite_configfiles)
    _findings = _integrity.quarantine_results(_expected, dry_run=_dry)
    _moved = {str(f.path) for f in _findings}
    for _f in _findings:
        _what = "Damaged result file" if _f.tag == _integrity.CORRUPT else "Stale result file"
        _grid = _grid_of.get(str(_f.path))
        if _grid and Path(_grid).exists() and _grid not in _moved:
            _next = (
                f"its frame was merged before (grid.h5 is kept); to remake it now: "
                f"snakemake{_configfiles} {_f.path}"
            )
        else:
            _next = "it is remade in this run"
        _aside = f"moved aside to {_f.moved_to.name}"
        if _f.tag == _integrity.STALE:
            _aside += " (kept for you; delete it when no longer needed)"
        if _dry:
            _logger.warning(
                f"{_what} {_f.path} ({_f.reason}): a run (not a dry run) moves it aside; then {_next}."
            )
        else:
            _logger.warning(f"{_what} {_f.path} ({_f.reason}): {_aside}; {_next}.")


onstart:
    # Without job accounting sacct fails on every poll and the SLURM plugin
    # waits forever: refuse before anything is submitted.
    if getattr(workflow.executor_plugin, "name", None) == "slurm" and (
        getattr(workflow.executor_settings, "status_command", None) == "sacct"
    ):
        if problem := _cluster.sacct_problem():
            raise WorkflowError(problem)


onerror:
    # sbatch rejections, with what to check.
    for hint in _cluster.submission_hints(log):
        _logger.error(hint)
