# ---------------------------------------------------------------------------
# Checks before anything runs: cluster settings, the kernel, damaged results.
# Code: trainability/ops/cluster.py, trainability/kernels/, trainability/results/integrity.py.
# Tests: tests/workflow/test_faults.py, tests/slurm/test_slurm.py.
# ---------------------------------------------------------------------------
from snakemake.logging import logger as _logger

from trainability.ops import cluster as _cluster
from trainability.results import integrity as _integrity
from trainability.boundary.scoring import SCORE_FIELDS
from trainability.contract.statistics import STAT_FIELDS

# Unset $TRAINABILITY_SLURM_* variables of the profile: stop, naming them.
if _unset := _cluster.unset_variables(getattr(workflow, "resource_settings", None)):
    stop_workflow(_cluster.unset_variables_message(_unset))

# TRAINABILITY_DEVICE, when set, must name a device: every training job resolves it. The
# string is checked here, in the process the user started; whether a CUDA device is
# visible only once Snakemake knows where the jobs run (below): a cluster's jobs train
# on its GPU nodes, not here. torch is imported only for a value other than auto or cpu.
_DEVICE = os.environ.get("TRAINABILITY_DEVICE", "auto")
if workflow.is_main_process and _DEVICE not in ("auto", "cpu"):
    from trainability.kernels import dispatch as _kernels

    if _device_problem := _kernels.device_problem(_DEVICE, "TRAINABILITY_DEVICE", here=False):
        stop_workflow(_device_problem)


# Checks that need what Snakemake knows only once it plans (the DAG settings, the executor):
# run, in this order, just before it plans. Snakemake has no hook there, so its planning
# step is wrapped; commands that make no plan (--lint, --list-rules) run none of them.
BEFORE_PLANNING = []


def _device_visible():
    """TRAINABILITY_DEVICE's CUDA device must be visible when this run's jobs train on this
    machine (an error), or may be (a warning for a dry run: its jobs may be for a cluster)."""
    if workflow.executor_plugin is not None and not workflow.touch and workflow.local_exec:
        if problem := _kernels.device_problem(_DEVICE, "TRAINABILITY_DEVICE"):
            if not workflow.dryrun:
                stop_workflow(f"{problem} (this run's jobs train on this machine)")
            _logger.warning(f"{problem}. A run whose jobs train on this machine stops here.")


if workflow.is_main_process and _DEVICE not in ("auto", "cpu"):
    BEFORE_PLANNING.append(_device_visible)

# A kernel named in the config (not `auto`) that cannot run an experiment on a
# device its jobs may use is a config error, before any job: on the device of
# TRAINABILITY_DEVICE when set, else on both CPU and CUDA (a cluster's jobs may
# land on either). torch is imported only then (slow; `auto` never needs it here).
if workflow.is_main_process and config.get("kernel", "auto") != "auto":
    from trainability.kernels import dispatch as _kernels

    _types = ["cpu", "cuda"] if _DEVICE == "auto" else [_kernels.resolve_device(_DEVICE).type]
    if _kernel_problems := _kernels.config_problems(EXPERIMENTS, config["kernel"], _types, Path.cwd()):
        stop_workflow(str(tconfig.ConfigError(_kernel_problems)))

# TRAINABILITY_TRITON_* tuning variables that are set must be valid (they choose the
# GPU kernel's variant in every training job). torch is imported only when one is set.
if workflow.is_main_process and any(k.startswith("TRAINABILITY_TRITON_") for k in os.environ):
    from trainability.kernels import triton_gpu as _triton_gpu

    if _knob_problems := _triton_gpu.knob_problems():
        stop_workflow("; ".join(_knob_problems))

# The main process polls SLURM: make it see scancel'ed jobs as failed.
if workflow.is_main_process:
    _cluster.patch_slurm_status_query()


# A result file damaged after it was written (truncated, overwritten, copied from
# another frame), made with other settings than the config's, or an automatic centre
# that is not the search's (outside its region, other settings, not JSON) is remade,
# and the bad file is moved aside to <name>.corrupt-<time> or <name>.stale-<time>,
# never deleted: shards, grid.h5, scores.h5 and centre.json. Only a run that holds
# Snakemake's lock moves anything (the onstart handler below): every command reads
# this file (dry runs, --summary, --unlock, --lint, a second snakemake started while
# a run goes on), and Snakemake takes its lock only after it has planned. So the
# check, read-only, runs just before Snakemake plans (never for --lint or
# --list-rules), and tells the plan instead: the bad files of the experiments this
# run targets are forced (as --forcerun would), which remakes them and what depends
# on them (a damaged shard of a merged frame too: the damage made it newer than the
# frame, so Snakemake merges again). Cluster jobs read this file too: only the process
# the user started checks.
def _expected_results():
    """{path: integrity.Expected(Centre)} of every result file a later step reads."""
    expected = {}
    for name, exp in EXPERIMENTS.items():
        res, size = exp["grid"]["resolution"], exp["grid"]["shard_size"]
        training = tconfig.as_builtin(tconfig.training_params(exp))
        if auto_centre(name):
            region = tuple(tgrid.centre_region((exp["phase_space"]["x"], exp["phase_space"]["y"]), "auto"))
            made_with = centre_made_with(name)
            precise = exp["training"]["dtype"] == "float64x2"
            expected[CENTRE.format(experiment=name)] = _integrity.ExpectedCentre(
                name, region, made_with, precise
            )
        for frame in frames(name):
            whose = {"experiment": name, "frame": frame}
            grid_path = GRID.format(experiment=name, frame=frame)
            for shard, path in enumerate(frame_shards(name, frame)):
                start, stop = tgrid.shard_pixels(shard, res, size)
                where = {**whose, "first_pixel": start, "n_pixels": stop - start, "shard": shard}
                expected[path] = _integrity.Expected(STAT_FIELDS, (stop - start,), where, training)
            where = {**whose, "resolution": res}
            expected[grid_path] = _integrity.Expected(STAT_FIELDS, (res, res), where, training)
            scores = SCORES.format(experiment=name, frame=frame)
            expected[scores] = _integrity.Expected(SCORE_FIELDS, (res, res), where)
    return expected


def _targeted_experiments(targets):
    """The experiments whose files this run may remake: all for the default target or a rule
    name, else those named by the target paths (results/<experiment>/..., logs/<experiment>/...)."""
    named = set()
    for target in targets:
        parts = Path(target).parts
        if len(parts) < 2 or parts[0] not in ("results", "logs", "archives"):
            return set(EXPERIMENTS)
        named.add(parts[1].removesuffix(".tar.gz"))
    return (named & set(EXPERIMENTS)) if targets else set(EXPERIMENTS)


# Bad files found while planning; onstart moves them aside once the run holds the lock.
_TO_MOVE = []


def _plan_repairs():
    """Inspect the results (read only), report each bad one, and force the remake of those
    this run may touch: Snakemake hands a command its DAG settings only after it has read
    the Snakefile, so this waits for the planning step."""
    settings = workflow.dag_settings
    targeted = _targeted_experiments({str(t) for t in settings.targets})
    findings = _integrity.inspect_results(_expected_results())
    for f in findings:
        what = "Damaged result file" if f.tag == _integrity.CORRUPT else "Stale result file"
        if Path(f.path).parts[1] not in targeted:
            _logger.warning(
                f"{what} {f.path} ({f.reason}): left as it is (this run does not target its "
                "experiment); a run that does moves it aside and remakes it."
            )
            continue
        _TO_MOVE.append(f)
        kept = " (kept for you; delete it when no longer needed)" if f.tag == _integrity.STALE else ""
        _logger.warning(
            f"{what} {f.path} ({f.reason}): remade by this run, which first moves it aside to "
            f"{f.moved_to.name}{kept} once it holds Snakemake's lock (a dry run or an inspection "
            "command moves nothing)."
        )
    settings.forcerun = set(settings.forcerun) | {str(f.path) for f in _TO_MOVE}


def _before_planning(prepare_dag):
    def prepare(*args, **kwargs):
        for check in BEFORE_PLANNING:
            check()
        return prepare_dag(*args, **kwargs)

    return prepare


if workflow.is_main_process:
    BEFORE_PLANNING.append(_plan_repairs)
    workflow._prepare_dag = _before_planning(workflow._prepare_dag)


onstart:
    # Without job accounting sacct fails on every poll and the SLURM plugin
    # waits forever: refuse before anything is submitted.
    if getattr(workflow.executor_plugin, "name", None) == "slurm" and (
        getattr(workflow.executor_settings, "status_command", None) == "sacct"
    ):
        if problem := _cluster.sacct_problem():
            raise WorkflowError(problem)
    # This run holds Snakemake's lock now: move the bad files found while planning aside
    # (the plan remakes them). A file changed since then is left alone.
    if not workflow.touch:
        for _f in _integrity.move_aside(_TO_MOVE):
            _logger.warning(f"Moved {_f.path} aside to {_f.moved_to.name}.")


onerror:
    # sbatch rejections, with what to check.
    for hint in _cluster.submission_hints(log):
        _logger.error(hint)
