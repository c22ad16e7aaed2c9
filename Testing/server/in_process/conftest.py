"""Tests that need torch and MONAI: they run in the server's environment (.venv-server), see scripts/test.sh."""

import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[3] / "MonaiLabelApp"
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))
