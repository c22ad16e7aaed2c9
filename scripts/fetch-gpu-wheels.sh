#!/usr/bin/env bash
# The two Python packages the synthseg training needs that the GPU machine's image lacks (it has
# torch, numpy, packaging, typing-extensions), as wheels in .whl/ (ignored by git), to carry there.
# Both are pure Python; versions as in requirements/server-lock.txt. See docs/synthseg-gpu-training.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv-server/bin/python}
lock() { grep -i "^$1==" requirements/server-lock.txt | head -1; }
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "$(lock monai)" "$(lock nibabel)"
ls -l .whl
