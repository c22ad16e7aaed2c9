#!/usr/bin/env bash
# Installs ElastixMonaiLabel from this checkout into a new virtual environment DIR, with pinned dependencies, as a
# user would have it: no checkout needed afterwards (the package carries its presets, SynthSeg data and server app).
#   bash scripts/install.sh DIR            the core and its command line (DIR/bin/elastix-monailabel)
#   bash scripts/install.sh DIR --server   also the MONAI Label server (torch on the CPU, monailabel 0.8.5), so that
#                                          DIR/bin/elastix-monailabel serve / segment / demo work from any folder
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: bash scripts/install.sh DIR [--server]" >&2
  exit 2
fi
target=$1
server=${2:-}
PYTHON="${PYTHON:-python3}"
if [ -e "$target" ]; then
  echo "error: $target exists; give a new folder for the virtual environment" >&2
  exit 2
fi
"$PYTHON" -m venv "$target"
pip=("$target/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade "pip==25.3"
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$target/bin/python" -m pip wheel --quiet --no-deps -w "$wheels" .
if [ "$server" = "--server" ]; then
  # monailabel 0.8.5 starts only with exact pins, and its sam2 dependency is a source package whose isolated build
  # would pull a CUDA torch: torch and numpy first, then the whole lock without dependency resolution or isolation.
  tools=$(sed -n 's/^# build tools: //p' requirements/server-lock.txt)
  "${pip[@]}" $tools
  "${pip[@]}" --no-deps $(grep -E '^(torch|numpy)==' requirements/server-lock.txt)
  "${pip[@]}" --no-deps --no-build-isolation -r requirements/server-lock.txt
  "${pip[@]}" --no-deps "$wheels"/elastix_monailabel-*.whl
elif [ -n "$server" ]; then
  echo "error: unknown option $server (did you mean --server?)" >&2
  exit 2
else
  # The core's dependencies at the versions the project tests (requirements/lock.txt as constraints).
  "${pip[@]}" -c requirements/lock.txt "$wheels"/elastix_monailabel-*.whl
fi
echo "installed: $target/bin/elastix-monailabel (try: $target/bin/elastix-monailabel --help)"
