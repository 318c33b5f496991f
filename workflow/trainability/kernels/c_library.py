"""The C kernels (``fused_cpu.c``, ``fused_cpu_dd.c``): built on first use, cached, and called
over chunks of pixels on Python threads.

Each kernel is compiled with the system's C compiler (``$CC``, ``gcc`` or ``cc``) with
``FLAGS`` (IEEE semantics: ``-ffp-contract=off``, no ``-ffast-math``; ``-march=native``
changes speed only, the bits are fixed by the source) and the contract's constants as
``-D`` definitions, cached under ``$TRAINABILITY_CACHE`` (default
``$XDG_CACHE_HOME/trainability`` or ``~/.cache/trainability``; the temporary directory when
that is not writable) keyed by source, definitions, flags, compiler and CPU, and loaded
with ctypes. A library is written under a temporary name and renamed, so concurrent
builders never see a partial file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import starmap
from pathlib import Path

from trainability.contract.optimizers import MAX_HYPERPARAMETERS, OPTIMIZER_CODES
from trainability.contract.problem import NONLINEARITY_CODES
from trainability.contract.statistics import FLOAT_FIELDS, MAX_RATIO, TAIL_STEPS

# The contract's constants and codes, compiled into every C kernel as -D definitions (the
# kernels spell none of them; part of each cache key): the statistics' columns, MAX_RATIO and
# TAIL_STEPS, the nonlinearities' and optimisers' codes, the hyperparameter columns.
CONTRACT_DEFINES = (
    f"-DMAX_RATIO={MAX_RATIO!r}",
    f"-DTAIL_STEPS={TAIL_STEPS}",
    f"-DN_STATS={len(FLOAT_FIELDS)}",
    *(f"-DSTAT_{name.upper()}={i}" for i, name in enumerate(FLOAT_FIELDS)),
    *(f"-DPHI_{name.upper()}={code}" for name, code in NONLINEARITY_CODES.items()),
    *(f"-DOPT_{name.upper()}={code}" for name, code in OPTIMIZER_CODES.items()),
    f"-DN_HYPER={MAX_HYPERPARAMETERS}",
)
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fopenmp-simd", "-fno-math-errno", "-fPIC", "-shared")
LIBS = ("-lm",)  # fma() where the ISA has no FMA instruction


def cache_dir() -> Path:
    root = os.environ.get("TRAINABILITY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "trainability"
    )
    return Path(root)


def find_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def _cpu_identity() -> str:
    """Distinguishes machines that share a cache directory (-march=native code may not run elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return platform.machine() + "".join(lines)


def headers(source: Path) -> list[Path]:
    """The headers a kernel may include from beside it: part of its cache key."""
    return sorted(source.parent.glob("*.h"))


def compile_library(
    compiler: str, source: Path, defines: tuple[str, ...], out: Path, flags: tuple[str, ...] = FLAGS
) -> tuple[bool, str]:
    """Build ``source`` into the shared library ``out``: (True, "") or (False, why)."""
    with tempfile.TemporaryDirectory(prefix="trainability-cc-") as tmp:
        src = Path(tmp) / source.name
        src.write_text(source.read_text())
        so = Path(tmp) / f"{source.stem}.so"
        # The kernels' shared headers (loss_statistics.h) are included from beside the source.
        cmd = [compiler, *flags, *defines, f"-I{source.parent}", "-o", str(so), str(src), *LIBS]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, str(err)
        if proc.returncode != 0:
            return False, proc.stderr[-2000:]
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp_out = out.with_name(f"{out.name}.{os.getpid()}.tmp")
            shutil.copyfile(so, tmp_out)
            os.replace(tmp_out, out)  # atomic: concurrent builders each write their own file
        except OSError as err:
            return False, f"cannot write {out}: {err}"
        return True, ""


def cached_library(source: Path, defines: tuple[str, ...]) -> tuple[ctypes.CDLL | None, str]:
    """The native build of ``source``, from the cache or compiled into it: (library, "") or
    (None, why it cannot be built)."""
    compiler = find_compiler()
    if compiler is None:
        return None, "no C compiler (gcc/cc/$CC) found"
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    text = source.read_text() + "".join(h.read_text() for h in headers(source))
    key = hashlib.sha256(
        "\0".join([text, *FLAGS, *LIBS, *defines, compiler, version, _cpu_identity()]).encode()
    ).hexdigest()[:16]
    ok, why = False, ""
    for cache in (cache_dir(), Path(tempfile.gettempdir()) / f"trainability-{os.getuid()}"):
        path = cache / f"{source.stem}_{key}.so"
        ok = path.exists()
        if not ok:
            ok, why = compile_library(compiler, source, defines, path)
        if ok or not why.startswith("cannot write"):
            break
    if not ok:
        return None, why
    try:
        return ctypes.CDLL(str(path)), ""
    except OSError as err:
        return None, str(err)


def variant_library(
    source: Path, defines: tuple[str, ...], march: str, out_dir: Path, extra_flags: tuple[str, ...] = ()
) -> ctypes.CDLL:
    """``source`` built for ``-march=<march>`` (later ``extra_flags`` override, e.g. ``-O1``) into
    ``out_dir``, uncached, for comparing builds. Raises RuntimeError when it does not build."""
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler (gcc/cc/$CC) found")
    flags = (*(f for f in FLAGS if not f.startswith("-march=")), f"-march={march}", *extra_flags)
    tag = hashlib.sha256("\0".join(flags).encode()).hexdigest()[:12]
    path = Path(out_dir) / f"{source.stem}_{march}_{tag}.so"
    ok, why = compile_library(compiler, source, defines, path, flags)
    if not ok:
        raise RuntimeError(f"building {source.name} with {' '.join(flags)} failed: {why}")
    return ctypes.CDLL(str(path))


def in_chunks(work: Callable[[int, int], int], run, chunk: int | None = None) -> None:
    """``work(lo, hi)`` (training pixels [lo, hi) of ``run``, a ``backend.Run``; returns hi - lo)
    over chunks of ``chunk`` pixels (default: about four per thread, at most 64), on
    ``run.threads`` Python threads (the kernels release the GIL; one thread or one chunk: in
    this thread), reporting ``run.progress`` after each. Results do not depend on the chunks."""
    pixels, steps = run.pixels, run.steps
    chunk = chunk or max(1, min(64, -(-pixels // (4 * run.threads))))
    bounds = [(lo, min(pixels, lo + chunk)) for lo in range(0, pixels, chunk)]
    with ThreadPoolExecutor(max_workers=run.threads) as pool:  # starts threads only for pool.map
        in_parallel = run.threads > 1 and len(bounds) > 1
        widths = pool.map(work, *zip(*bounds)) if in_parallel else starmap(work, bounds)
        done = 0
        for width in widths:
            done += width * steps
            if run.progress is not None:
                run.progress(done, pixels * steps)
