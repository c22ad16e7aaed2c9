#!/usr/bin/env bash
# Unattended training of the contrast-agnostic synthseg model (see docs/synthseg-gpu-training.md).
# Arguments go to `python -m lib.synthseg.train` (--help lists them). PYTHON picks the interpreter:
# .venv-server's by default; on a GPU machine the one with CUDA torch, e.g. PYTHON=python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-server/bin/python}
export PYTHONPATH="$PWD/ElastixMonaiLabel:$PWD/MonaiLabelApp${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" -m lib.synthseg.train "$@"
