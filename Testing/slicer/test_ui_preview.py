"""The module's .ui loads in Qt's own UI loader (offscreen) and renders: the layout preview under docs/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ui_renders_with_every_widget(tmp_path):
    out = tmp_path / "preview.png"
    # A separate process: Qt wants its QApplication on the main thread, once. The script fails when a widget
    # it fills in (node selectors, tables, combo boxes) is missing from the .ui.
    script = ROOT / "scripts" / "render_ui_preview.py"
    run = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout + run.stderr
    from PySide6.QtGui import QImage

    image = QImage(str(out))
    assert image.width() >= 400 and image.height() >= 800  # every section laid out, nothing collapsed to nothing
    # The committed preview is the current .ui's: same size as a fresh rendering.
    committed = QImage(str(ROOT / "docs" / "module-layout-preview.png"))
    assert (committed.width(), committed.height()) == (image.width(), image.height())

