#!/usr/bin/env bash
# Sets everything up and runs the demo: sample subject -> co-registration -> pictures.
# Extra arguments go to 'elastix-monailabel demo' (see --help), e.g. --out /tmp/demo
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/setup-server-env.sh
exec .venv/bin/elastix-monailabel demo "$@"
