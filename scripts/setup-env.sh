#!/usr/bin/env bash
# Creates ./.venv if needed and installs the pinned dependencies (requirements/lock.txt)
# and the core (editable). Re-running is quick: it reinstalls only when the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating the virtual environment in .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing pinned dependencies into .venv (first run: a few minutes)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# The notebooks' kernel (notebooks/, run by scripts/run_notebooks.py): a kernel spec inside .venv, which
# Jupyter started from .venv finds by itself; nothing goes to the user's ~/.local.
if [ ! -f .venv/share/jupyter/kernels/elastix-monailabel/kernel.json ]; then
  .venv/bin/python -m ipykernel install --sys-prefix --name elastix-monailabel \
    --display-name "ElastixMonaiLabel core (.venv)" >/dev/null
fi
