#!/usr/bin/env bash
# Every GPU measurement in one call, on one H100/H200, in at most 8 minutes
# (benchmarks/gpu.py says what it runs and writes). Needs only the GPU image's
# PyTorch, Triton, numpy, h5py and pytest: no snakemake, no venv.
#
#   bash benchmarks/gpu.sh            # on the GPU node; JSON under benchmarks/results/
#   bash benchmarks/gpu.sh --dry      # the small CPU form of every step (tests/kernels/test_gpu_script.py)
#
# PYTHON picks the interpreter (default: python3 on PATH); other arguments go to gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/workflow:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m benchmarks.gpu "$@"
