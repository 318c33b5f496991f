# ---------------------------------------------------------------------------
# Checks before anything runs: cluster settings, the kernel, damaged results.
# Code: trainability/cluster.py, trainability/kernels/, trainability/integrity.py.
# Tests: tests/test_faults.py, tests/test_slurm.py.
# ---------------------------------------------------------------------------
from snakemake.logging import logger as _logger

from trainability import cluster as _cluster
from trainability import integrity as _integrity

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

# The main process polls SLURM: make it see scancel'ed jobs as failed.
if workflow.is_main_process:
    _cluster.patch_slurm_status_query()

# A shard file damaged after it was written (truncated, overwritten) is moved
# aside to <name>.corrupt-<time>, never deleted, so that Snakemake remakes it
# instead of merging garbage. A frame merged before the damage keeps its
# grid.h5 (merge checked every shard); Snakemake then remakes the shard only
# when that frame is merged again, or when asked for it. Only in the process
# the user started: cluster jobs parse this file too, while shards are written.
if workflow.is_main_process:
    _grid_of = {
        Path(shard): Path(GRID.format(experiment=name, frame=frame))
        for name in EXPERIMENTS
        for frame in frames(name)
        for shard in frame_shards(name, frame)
    }
    # A dry run reports and moves nothing. Hints repeat the --configfile of this run.
    _dry = _integrity.is_dry_run(sys.argv)
    _configfiles = "".join(f" --configfile {f}" for f in workflow.overwrite_configfiles)
    for _path, _moved, _problem in _integrity.quarantine_corrupt_shards(_grid_of, dry_run=_dry):
        if _grid_of[_path].exists():
            _next = (
                f"its frame was merged before (grid.h5 is kept); to remake it now: "
                f"snakemake{_configfiles} {_path}"
            )
        else:
            _next = "it will be recomputed"
        if _dry:
            _logger.warning(
                f"Damaged shard file {_path} ({_problem}): a run (not a dry run) moves it aside to "
                f"{_moved.name}; then {_next}."
            )
        else:
            _logger.warning(
                f"Damaged shard file {_path} ({_problem}): moved aside to {_moved.name}; {_next}."
            )


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
