#!/usr/bin/env bash
# Execute the notebooks (notebooks/*.ipynb) in their own kernels and write their rendered copies, with their
# pictures, to docs/notebooks/ (NAME.md and NAME_files/). Arguments: notebook names without .ipynb (default all),
# and --real-data DIR for the "on your own data" sections (skipped without it).
# Testing/notebooks/test_notebooks.py fails when a notebook's cells differ from its rendered copy: run this after editing one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/setup-server-env.sh
.venv/bin/python scripts/run_notebooks.py render "$@"
