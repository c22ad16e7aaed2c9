#!/usr/bin/env bash
# Sets everything up (.venv, .venv-server for the MONAI Label server, .venv-slicer for Slicer's libraries, the elastix
# executable) and runs the test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k geometry
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/setup-server-env.sh
bash scripts/setup-slicer-env.sh
bash scripts/ensure-elastix.sh
# Three environments, one run: the core's (.venv), the server's (.venv-server: torch, MONAI) for
# Testing/server/in_process, and Slicer's libraries (.venv-slicer: slicer-core) for Testing/slicer/on_slicer_core.
# pytest's exit code 5 (nothing collected) is a failure unless another run tested something.
set +e
.venv/bin/python -m pytest "$@"
core=$?
.venv-server/bin/python -m pytest -p no:cacheprovider Testing/server/in_process "$@"
torch=$?
.venv-slicer/bin/python -m pytest -p no:cacheprovider Testing/slicer/on_slicer_core "$@"
slicer=$?
set -e
if [ "$core" -eq 5 ] && [ "$torch" -eq 5 ] && [ "$slicer" -eq 5 ]; then
  echo "error: pytest collected no tests; a run that tests nothing is a failure" >&2
  exit 1
fi
for code in "$core" "$torch" "$slicer"; do
  if [ "$code" -ne 0 ] && [ "$code" -ne 5 ]; then
    exit "$code"
  fi
done
exit 0
