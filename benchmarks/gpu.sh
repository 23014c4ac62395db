#!/usr/bin/env bash
# The CUDA path, proven, on a machine with an NVIDIA GPU and a CUDA build of torch:
#   1. the tests marked `gpu` (skipped on CPU-only machines, run here),
#   2. benchmarks/gpu.py: every torch solver and training step on CUDA against CPU (same seed,
#      outputs within the tolerance stated per solver) and the GPU timings (MRI per-slice at
#      320², EELS training, PINN steps), written to the "GPU" section of BENCHMARKS.md.
# Usage: benchmarks/gpu.sh [--quick] [gpu.py options]. Without CUDA it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export OMP_WAIT_POLICY=PASSIVE
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "nvidia-smi not found"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
fi
exec "$PY" benchmarks/gpu.py "$@"
