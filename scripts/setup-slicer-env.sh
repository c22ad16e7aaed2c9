#!/usr/bin/env bash
# Creates ./.venv-slicer: Slicer's Qt-free libraries from PyPI (slicer-core, pinned in requirements/slicer-lock.txt)
# for Testing/slicer/on_slicer_core, where the module's Slicer layer and Logic run on real MRML. Kept apart from
# ./.venv: slicer-core brings its own vtk and a `slicer` package. Re-running is quick: it reinstalls only when the
# pins change. The core is not installed here: the tests put ElastixMonaiLabel/ on sys.path, as Slicer does.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv-slicer/bin/python ]; then
  echo "creating the Slicer libraries' virtual environment in .venv-slicer"
  "$PYTHON" -m venv .venv-slicer
fi
stamp=".venv-slicer/.installed-$(sha256sum < requirements/slicer-lock.txt | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing slicer-core and the pinned packages into .venv-slicer (first run: about a minute, 200 MB download)"
  pip=(.venv-slicer/bin/python -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade "pip==25.3"
  "${pip[@]}" --no-deps -r requirements/slicer-lock.txt
  rm -f .venv-slicer/.installed-*
  touch "$stamp"
fi
