"""Running Python with numpy's CPU dispatch switched off, to compare bits across vector units.

numpy picks SIMD loops at run time among the targets it was built with (X86_V3, X86_V4,
AVX512_ICL, ...); ``NPY_DISABLE_CPU_FEATURES`` switches targets off, so one machine can
run both the loops an AVX-512 CPU gets and those an older CPU gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

try:
    from numpy._core import _multiarray_umath as umath  # numpy >= 2
except ImportError:
    from numpy.core import _multiarray_umath as umath  # numpy 1.26

# Printed by every child: which dispatch targets it actually had.
FEATURES_LINE = (
    "try:\n    from numpy._core import _multiarray_umath as _u\nexcept ImportError:\n"
    "    from numpy.core import _multiarray_umath as _u\n"
    "print('FEATURES ' + json.dumps({k: bool(v) for k, v in _u.__cpu_features__.items()}))\n"
)


def dispatch_targets_found() -> list[str]:
    """The dispatch targets above numpy's baseline that this CPU has."""
    return [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]


def run_python(code: str, disabled: list[str] | None = None) -> tuple[dict, dict]:
    """(the JSON object ``code`` prints on its last line, the child's CPU features) of ``code``
    run in a fresh interpreter, with the dispatch targets ``disabled`` switched off."""
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    if disabled:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(disabled)
    program = f"import json\n{code}\n{FEATURES_LINE}"
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    features = json.loads(lines[-1].removeprefix("FEATURES "))
    return json.loads(lines[-2]), features


def baseline_and_default(code: str) -> tuple[dict, dict]:
    """``code``'s output with every dispatch target of this CPU off, and with numpy's default;
    asserts that the targets really were off in the first child."""
    found = dispatch_targets_found()
    baseline, features = run_python(code, found)
    assert not any(features[f] for f in found), "NPY_DISABLE_CPU_FEATURES had no effect"
    default, _ = run_python(code)
    return baseline, default
