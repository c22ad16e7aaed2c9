"""Render the module's .ui to a PNG with PySide6 (offscreen): a layout preview, not a Slicer screenshot.

Slicer's own widget classes do not exist outside Slicer, so for the picture only they become
the nearest plain Qt widget (node selectors -> combo boxes showing a placeholder node name,
collapsible sections -> group boxes, slider widgets -> sliders). Run through
scripts/render-ui-preview.sh, which installs the pinned PySide6 into .venv-preview.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
UI_FILE = ROOT / "ElastixMonaiLabel" / "Resources" / "UI" / "ElastixMonaiLabel.ui"
PLACEHOLDERS = {"qMRMLWidget": "QWidget", "qMRMLNodeComboBox": "QComboBox", "ctkCollapsibleButton": "QGroupBox",
                "ctkSliderWidget": "QSlider"}
EXAMPLE_NODES = {"referenceSelector": "sub-01_T1w", "movingSelector": "sub-01_FLAIR", "brainMaskSelector": "None",
                 "compareSelector": "sub-01_FLAIR_registered", "segmentationSelector": "sub-01_T1w_segmentation"}


def plain_ui(path: Path) -> bytes:
    tree = ElementTree.parse(path)
    root = tree.getroot()
    for widget in root.iter("widget"):
        original = widget.get("class")
        if original in PLACEHOLDERS:
            widget.set("class", PLACEHOLDERS[original])
            for prop in list(widget.findall("property")):
                if prop.get("name") in {"nodeTypes", "addEnabled", "removeEnabled", "noneEnabled", "renameEnabled",
                                        "baseName", "collapsed", "singleStep"}:
                    widget.remove(prop)
            if original == "ctkCollapsibleButton":
                for prop in widget.findall("property"):
                    if prop.get("name") == "text":
                        prop.set("name", "title")
            if original == "ctkSliderWidget":
                for prop in widget.findall("property"):
                    if prop.get("name") in {"maximum", "value"}:
                        prop.find("double").tag = "number"
                        prop.find("number").text = str(int(float(prop.find("number").text) * 100))
                orientation = ElementTree.SubElement(widget, "property", name="orientation")
                ElementTree.SubElement(orientation, "enum").text = "Qt::Horizontal"
    for custom in root.findall("customwidgets"):
        root.remove(custom)
    for connections in root.findall("connections"):
        root.remove(connections)
    return ElementTree.tostring(root, encoding="utf-8")


def main(out: Path) -> None:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QComboBox, QTableWidgetItem

    app = QApplication(sys.argv[:1])
    data = QByteArray(plain_ui(UI_FILE))  # kept referenced: Qt reads it while loading
    buffer = QBuffer(data)
    buffer.open(QIODevice.ReadOnly)
    loader = QUiLoader()
    widget = loader.load(buffer)
    if widget is None:
        raise SystemExit("the .ui could not be loaded")
    for name, text in EXAMPLE_NODES.items():
        widget.findChild(QComboBox, name).addItem(text)
    for name, items in {"presetComboBox": ["brain-rigid"], "modelComboBox": ["atlas_registration"],
                        "strategyComboBox": ["random"]}.items():
        widget.findChild(QComboBox, name).addItems(items)
    table = widget.findChild(object, "movingTable")
    table.setRowCount(2)
    for row, (volume, modality) in enumerate([("sub-01_T2w", "t2"), ("sub-01_FLAIR", "flair")]):
        table.setItem(row, 0, QTableWidgetItem(volume))
        table.setItem(row, 1, QTableWidgetItem(modality))
    widget.findChild(object, "serverUrlLineEdit").setText("http://127.0.0.1:8000")
    widget.findChild(object, "referenceModalityLineEdit").setText("t1")
    widget.resize(460, widget.sizeHint().height())
    widget.show()
    app.processEvents()
    image = widget.grab()
    # The caption is part of the picture so that it cannot be mistaken for a screenshot of Slicer.
    from PySide6.QtGui import QColor, QPainter, QPixmap

    captioned = QPixmap(image.width(), image.height() + 28)
    captioned.fill(QColor("#fff3cd"))
    painter = QPainter(captioned)
    painter.drawPixmap(0, 28, image)
    painter.drawText(8, 19, "Layout preview of the .ui (plain Qt stand-ins), not a Slicer screenshot")
    painter.end()
    image = captioned
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out)):
        raise SystemExit(f"could not write {out}")
    print(f"layout preview written to {out} ({image.width()}x{image.height()})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "module-layout-preview.png")
