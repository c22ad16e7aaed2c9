#!/usr/bin/env bash
# Sets everything up (.venv, .venv-server for the MONAI Label server, the elastix executable)
# and runs the test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k geometry
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/setup-server-env.sh
bash scripts/ensure-elastix.sh
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "error: pytest collected no tests; a run that tests nothing is a failure" >&2
  exit 1
fi
exit "$code"
