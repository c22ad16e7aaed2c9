#!/usr/bin/env bash
# Creates ./.venv-server for the MONAI Label server app: CPU torch, monailabel 0.8.5 with the
# pins it needs to start (requirements/server-lock.txt), itk-elastix and the core (editable).
# Kept apart from ./.venv on purpose: monailabel's pins must not leak into the core's (or
# Slicer's) environment. Re-running is quick: it reinstalls only when the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-server/bin/python ]; then
  echo "creating the server's virtual environment in .venv-server"
  "$PYTHON" -m venv .venv-server
fi
stamp=".venv-server/.installed-$(cat requirements/server-lock.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing the MONAI Label server's pinned packages into .venv-server (first run: a few minutes)"
  tools=$(sed -n 's/^# build tools: //p' requirements/server-lock.txt)
  pip=(.venv-server/bin/python -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade "pip==25.3" $tools
  # torch and numpy first: sam2's build (no isolation) imports them.
  "${pip[@]}" --no-deps $(grep -E '^(torch|numpy)==' requirements/server-lock.txt)
  "${pip[@]}" --no-deps --no-build-isolation -r requirements/server-lock.txt
  "${pip[@]}" --no-deps -e .
  rm -f .venv-server/.installed-*
  touch "$stamp"
fi
# The kernel of the notebooks that need torch and MONAI: a kernel spec inside .venv-server (Jupyter started
# from .venv finds it with JUPYTER_PATH=.venv-server/share/jupyter); nothing goes to the user's ~/.local.
if [ ! -f .venv-server/share/jupyter/kernels/elastix-monailabel-server/kernel.json ]; then
  .venv-server/bin/python -m ipykernel install --sys-prefix --name elastix-monailabel-server \
    --display-name "ElastixMonaiLabel server (.venv-server: torch, MONAI)" >/dev/null
fi
