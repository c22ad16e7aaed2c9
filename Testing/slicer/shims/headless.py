"""Slicer's libraries, head-less, for Testing/slicer/on_slicer_core: slicer-core's ``slicer`` package (MRML, logics,
slicer/util.py), Slicer's vendored pure-Python files of one release tag, SlicerElastix, and the stand-ins that
README.md lists (the one place that says what each stands in for).

Slicer's files are put on ``slicer.__path__`` after ``import slicer``, never on sys.path: slicer-core's ``__init__``
imports every module of every ``slicer/`` folder on sys.path at once, and Slicer's own ``slicer/__init__.py`` would
replace slicer-core's package.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "vendor"
TAGS = ("v5.12.3", "v5.10.0")
# Slicer's wrapped Qt widgets that Slicer's Python names on the ``slicer`` package (guiConnectors.py's annotations).
WIDGET_CLASSES = ("qMRMLNodeComboBox", "qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLRangeWidget", "qMRMLWidget",
                  "qSlicerWidget", "qMRMLCheckableNodeComboBox", "qMRMLSegmentSelectorWidget", "qMRMLSubjectHierarchyTreeView")
# What is imported again for each tag: Slicer's vendored modules and the scripted module built on them.
TAG_MODULES = ("slicer.i18n", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "ElastixMonaiLabel")


class SlicerApplication:
    """``slicer.app`` for a Slicer started with ``--testing`` (README.md)."""

    applicationName = "Slicer"

    def __init__(self, folder: Path) -> None:
        self.temporaryPath = str(folder / "temporary")
        self.slicerUserSettingsFilePath = str(folder / "settings" / "Slicer.ini")
        for path in (Path(self.temporaryPath), Path(self.slicerUserSettingsFilePath).parent):
            path.mkdir(parents=True, exist_ok=True)
        self.connections: list[tuple[str, object]] = []

    def testingEnabled(self) -> bool:
        return True

    def processEvents(self, flags=None) -> None:
        import qt

        if flags == qt.QEventLoop.WaitForMoreEvents:
            time.sleep(0.1)  # Qt returns at the next event: wait_for's 100 ms timer at the latest

    def translate(self, context: str, text: str) -> str:
        return text

    def connect(self, signal: str, slot) -> bool:
        self.connections.append((signal, slot))
        return True


def import_slicer_core() -> ModuleType:
    """slicer-core's ``slicer`` package, imported while no other ``slicer/`` folder is on sys.path: its ``__init__``
    takes every such folder (this project's Testing/slicer, which pytest's rootdir puts within reach) as part of the
    package and imports every module in it."""
    if "slicer" not in sys.modules:
        saved = sys.path[:]
        sys.path[:] = [p for p in saved if not (Path(p or ".") / "slicer").is_dir()
                       or (Path(p or ".") / "slicer" / "__init__.py").is_file()]
        try:
            importlib.import_module("slicer")
        finally:
            sys.path[:] = saved
    return sys.modules["slicer"]


def install(folder: Path) -> SlicerApplication:
    """Stand-ins in place, a fresh scene, SlicerElastix importable and pointed at the elastix on PATH (Debian's)."""
    for path in (str(HERE), str(VENDOR / "SlicerElastix" / "Elastix")):
        if path not in sys.path:
            sys.path.insert(0, path)
    import qt

    slicer = import_slicer_core()

    for name in WIDGET_CLASSES:
        setattr(slicer, name, type(name, (), {"__module__": "slicer", "__init__": lambda self, *args, **kwargs: None}))
    slicer.app = SlicerApplication(folder)
    slicer.mrmlScene = slicer.vtkMRMLScene()
    # What Slicer's startup does when it loads the Segmentations module: its logic, given a scene, registers the
    # segmentation converter rules (vtkSlicerSegmentationsModuleLogic::RegisterNodes), without which no segment can
    # be added to a segmentation.
    slicer.vtkSlicerSegmentationsModuleLogic().SetMRMLScene(slicer.mrmlScene)
    elastix = shutil.which("elastix")
    if elastix:
        qt.QSettings().setValue("Elastix/CustomElastixPath", str(Path(elastix).parent))
    return slicer.app


def slicer_files(tag: str, folder: Path) -> Path:
    """The folder of Slicer's files at ``tag``: v5.12.3's as vendored; v5.10.0's are v5.12.3's with the two files
    that differ at v5.10.0 laid over them (in ``folder``)."""
    base = VENDOR / "Slicer" / "v5.12.3" / "slicer"
    if tag == "v5.12.3":
        return base
    merged = folder / tag / "slicer"
    if not merged.exists():
        shutil.copytree(base, merged)
        shutil.copytree(VENDOR / "Slicer" / tag / "slicer", merged, dirs_exist_ok=True)
    return merged


_current: dict[str, str] = {}
_kept: dict[str, dict[str, ModuleType]] = {}


def _tag_modules() -> dict[str, ModuleType]:
    return {name: module for name, module in sys.modules.items()
            if any(name == root or name.startswith(root + ".") for root in TAG_MODULES)}


def module_at(tag: str, folder: Path) -> ModuleType:
    """ElastixMonaiLabel.py imported on Slicer's files of ``tag``; each tag's modules are kept and put back when the
    tag is asked for again (so a class from one tag is never mixed with another tag's parameterNodeWrapper)."""
    import slicer

    previous = _current.get("tag")
    if previous != tag:
        if previous:
            _kept[previous] = _tag_modules()
            slicer.__path__.remove(str(slicer_files(previous, folder)))
        for name in _tag_modules():
            del sys.modules[name]
        for name in ("i18n", "ScriptedLoadableModule", "parameterNodeWrapper"):
            if hasattr(slicer, name):
                delattr(slicer, name)
        slicer.__path__.append(str(slicer_files(tag, folder)))
        sys.modules.update(_kept.get(tag, {}))
        for name in ("i18n", "ScriptedLoadableModule", "parameterNodeWrapper"):
            if f"slicer.{name}" in sys.modules:
                setattr(slicer, name, sys.modules[f"slicer.{name}"])
        _current["tag"] = tag
    return importlib.import_module("ElastixMonaiLabel")
