#!/usr/bin/env bash
# Render ElastixMonaiLabel.ui to docs/module-layout-preview.png with PySide6 under offscreen Qt.
# A layout preview (Slicer's widgets replaced by plain Qt ones), not a screenshot of Slicer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/render_ui_preview.py "$@"
