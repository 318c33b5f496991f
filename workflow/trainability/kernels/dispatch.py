"""The dispatcher: which backend runs a case, training through it, and what a result's bits
depend on.

Every backend implements ``kernels.backend.Backend``: ``unsupported(problem, dtype,
device) -> reason | None`` and ``train(run) -> stats`` (a ``kernels.backend.Run``; the
statistics of ``trainability.contract.statistics``); none imports another or this dispatcher.

=================  ==========  ===============================================
backend            ``kernel``  runs
=================  ==========  ===============================================
``c_cpu``          fused       CPU, float64, depth 2 (C, built on first use)
``triton_gpu``     fused       CUDA, float64/float32, depth 2, one output,
                               widths powers of two >= 16
``torch_batched``  torch       any device, dtype and depth
=================  ==========  ===============================================

``kernel="auto"`` takes the device's fused backend when it supports the case,
the torch backend otherwise (``choose_backend``, once per experiment: callers pass the
chosen backend down to ``train_pixels``); a kernel named explicitly that cannot run the
case raises ``KernelUnsupported`` with the reason (the workflow checks this
before any job starts, ``config_problems``). Kernels agree to rounding, not
bit for bit; each is invariant to sharding. ``reference`` is the per-pixel
autograd implementation the kernels are tested and benchmarked against.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from trainability.contract.problem import Problem, build_problem
from trainability.contract.randomness import pixel_problem
from trainability.kernels import c_cpu, torch_batched, triton_gpu
from trainability.kernels.backend import TORCH_DTYPES, Backend, ProgressCallback, Run

KERNELS = ("auto", "torch", "fused")
FUSED_BY_DEVICE_TYPE: dict[str, Backend] = {"cpu": c_cpu, "cuda": triton_gpu}


class KernelUnsupported(ValueError):
    """A kernel named explicitly cannot run the case; the message says why."""

    def __init__(self, kernel: str, device_type: str, reasons: list[str]):
        self.reasons = reasons or [f"no fused kernel for {device_type} devices"]
        super().__init__(f"kernel {kernel!r} cannot run on {device_type}: " + "; ".join(self.reasons))


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` means CUDA when available, CPU otherwise."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


DEVICES = "auto (CUDA when visible, else cpu), cpu, cuda or cuda:N"
_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_problem(value: str, name: str, here: bool = True) -> str | None:
    """Why ``value`` of the option or variable ``name`` (``--device``, ``TRAINABILITY_DEVICE``)
    cannot name a training device, or None. The spelling is checked without a GPU; with
    ``here``, a CUDA device must also be visible on this machine."""
    given = f"{name} {value!r}" if name.startswith("-") else f"{name}={value!r}"
    if not _DEVICE_NAME.fullmatch(value):
        return f"{given} is not a device; allowed: {DEVICES}"
    if not here or not value.startswith("cuda"):
        return None
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible == 0:
        why = "this torch has no CUDA support" if torch.version.cuda is None else "no GPU"
        return f"{given}: no CUDA device is visible here ({why}); allowed: cpu, or auto"
    index = int(value.partition(":")[2] or 0)
    if index >= visible:
        return f"{given}: {visible} CUDA device(s) are visible here; allowed: cuda:0..cuda:{visible - 1}"
    return None


def _candidates(kernel: str, device: torch.device) -> list[Backend]:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    fused = [FUSED_BY_DEVICE_TYPE[device.type]] if device.type in FUSED_BY_DEVICE_TYPE else []
    return {"auto": fused + [torch_batched], "fused": fused, "torch": [torch_batched]}[kernel]


def choose_backend(
    problem: Problem, dtype: str, device: str | torch.device = "auto", kernel: str = "auto"
) -> Backend:
    """The backend (module) that runs the case; raises KernelUnsupported naming the reason.
    Needs no GPU to answer."""
    device = resolve_device(device)
    reasons = []
    for candidate in _candidates(kernel, device):
        reason = candidate.unsupported(problem, dtype, device)
        if reason is None:
            return candidate
        reasons.append(reason)
    raise KernelUnsupported(kernel, device.type, reasons)


def select_kernel(
    problem: Problem, dtype: str, device: str | torch.device = "auto", kernel: str = "auto"
) -> str:
    """The name (``fused`` or ``torch``) of the backend ``choose_backend`` takes for the case."""
    return choose_backend(problem, dtype, device, kernel).NAME


def train_pixels(
    problem: Problem,
    learning_rates: np.ndarray,
    offsets: np.ndarray | None = None,
    *,
    nonlinearity: str,
    steps: int,
    offset_mode: str = "every_step",
    dtype: str = "float64",
    device: str | torch.device | None = "auto",
    first_pixel: int = 0,
    block_pixels: int | None = None,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    kernel: str = "auto",
    backend: Backend | None = None,
    optimizer: str = "gd",
    optimizer_params: Mapping[str, np.ndarray] | None = None,
    learning_rates_lo: np.ndarray | None = None,
    offsets_lo: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Train one network per pixel and return per-pixel loss statistics.

    The arguments are the fields of ``kernels.backend.Run`` (which says what each means),
    and: ``device`` may be ``auto`` (``resolve_device``); ``threads`` defaults to torch's
    thread count; ``kernel`` (``auto``, ``fused`` or ``torch``, see the module docstring)
    chooses the backend, unless ``backend`` gives the one already chosen
    (``choose_backend``), which must support the case.

    Returns:
        dict of ``statistics.STAT_FIELDS`` -> (P,) arrays (float64; ``diverged_step`` int64).
    """
    device = resolve_device(device)
    run = Run(
        problem,
        learning_rates,
        offsets,
        nonlinearity=nonlinearity,
        steps=steps,
        offset_mode=offset_mode,
        dtype=dtype,
        device=device,
        first_pixel=first_pixel,
        block_pixels=block_pixels,
        threads=threads or torch.get_num_threads(),
        progress=progress,
        optimizer=optimizer,
        optimizer_params=optimizer_params or {},
        learning_rates_lo=learning_rates_lo,
        offsets_lo=offsets_lo,
    )
    if backend is None:
        backend = choose_backend(problem, dtype, device, kernel)
    elif reason := backend.unsupported(problem, dtype, device):
        raise KernelUnsupported(backend.NAME, device.type, [reason])
    results = backend.train(run)
    if progress is not None:
        total = run.pixels * steps
        progress(total, total)
    return results


def config_problems(
    experiments: Mapping[str, dict], kernel: str, device_types: Iterable[str], workdir: str | Path = "."
) -> list[str]:
    """Config errors for a kernel that cannot run an experiment on a device type: one named
    explicitly, or ``auto`` where no backend runs the dtype (double-double off the CPU).

    ``experiments`` are resolved experiments (``config.validate_config``).
    """
    problems = []
    for name, exp in experiments.items():
        dtype = exp["training"]["dtype"]
        if exp["model"].get("kind", "mlp") != "mlp":
            continue  # the one-dimensional control trains with numpy, whatever the kernel
        if kernel == "auto" and dtype in TORCH_DTYPES:
            continue  # the torch backend runs every case of a torch dtype
        shared = build_problem(exp["model"], exp["data"], exp["training"], workdir)
        shared = pixel_problem(shared, exp["model"], exp["data"], exp["training"], [0])
        for device_type in sorted(set(device_types)):
            try:
                choose_backend(shared, dtype, torch.device(device_type), kernel)
            except KernelUnsupported as err:
                allowed = (
                    "auto (falls back to torch) or torch"
                    if dtype in TORCH_DTYPES
                    else "auto or fused on a CPU (TRAINABILITY_DEVICE=cpu), or training.dtype float64"
                )
                problems.append(
                    f"kernel: {kernel!r} cannot run experiments.{name} on {device_type}: "
                    f"{'; '.join(err.reasons)}; allowed: {allowed}"
                )
    return problems


def arithmetic_identity(
    kernel: str, device: str | torch.device, dtype: str = "float64", optimizer: str = "gd"
) -> dict[str, str]:
    """What a result's bits depend on (stored with each shard): the kernel, its build class
    and the device type. Two shards with the same identity hold the same bits for the same
    pixels; the merge refuses to mix identities in one frame unless the config allows it
    (trainability.results.shard_arithmetic).

    The fused C kernel's bits are the same on every x86-64 (and aarch64) CPU: its build
    class names its fixed arithmetic (kernels.c_cpu.build_class: float64's, or double-double's),
    its device is ``cpu``.
    torch's depend on its version and the vector unit it dispatches to on CPU
    (``torch.backends.cpu.get_cpu_capability``), or on the GPU model; Triton's on its
    version, the variant's knobs (``triton_gpu.build_identity``, which depends on the
    dtype and the optimiser) and the GPU model.
    """
    device = resolve_device(device)
    if device.type == "cuda":
        where = f"cuda {torch.cuda.get_device_name(device)}"
    else:
        where = device.type
    if kernel == "fused" and device.type == "cpu":
        build = c_cpu.build_class(dtype)
    elif kernel == "fused":
        build = triton_gpu.build_identity(dtype, optimizer)
    elif device.type == "cpu":
        build = f"torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"
    else:
        build = f"torch {torch.__version__}"
    return {"kernel": kernel, "build": build, "device": where}


def describe_device(device: str | torch.device) -> dict[str, str]:
    """Where a shard was computed: device, host, processor or GPU, threads (stored with each shard)."""
    device = resolve_device(device)
    info = {
        "device": str(device),
        "host": platform.node(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
    return info
