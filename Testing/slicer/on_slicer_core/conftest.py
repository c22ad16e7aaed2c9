"""The module on Slicer's libraries (slicer-core, Slicer's vendored files, SlicerElastix): runs in .venv-slicer only
(scripts/setup-slicer-env.sh; Testing/conftest.py leaves this folder out where ``slicer`` cannot be imported).
What stands in for Qt and for ``slicer.app``: ../shims/README.md."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import SimpleNamespace

import pytest

SHIMS = Path(__file__).resolve().parents[1] / "shims"
sys.path[:0] = [str(SHIMS), str(SHIMS.parent)]  # the stand-ins; Testing/slicer's helpers (oblique_grids)
import headless  # noqa: E402
from ElastixMonaiLabelSlicer import views  # noqa: E402

headless.import_slicer_core()  # before any test module imports slicer (see there why)

MODULE_DIR = Path(__file__).resolve().parents[3] / "ElastixMonaiLabel"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "ElastixMonaiLabel.ui"


@pytest.fixture(scope="session")
def slicer_folder(tmp_path_factory) -> Path:
    """Slicer's temporary and settings folders for the session, the stand-ins installed."""
    folder = tmp_path_factory.mktemp("slicer")
    headless.install(folder)
    return folder


@pytest.fixture(scope="session")
def module_at(slicer_folder):
    """module_at(tag) -> ElastixMonaiLabel.py imported on Slicer's Python files of that tag (headless.TAGS)."""
    return lambda tag="v5.12.3": headless.module_at(tag, slicer_folder)


@pytest.fixture
def eml(module_at):
    """ElastixMonaiLabel.py on Slicer 5.12.3's files (the newest release tag)."""
    return module_at("v5.12.3")


@pytest.fixture
def scene(slicer_folder):
    """A new, empty MRML scene as slicer.mrmlScene (the module and slicer.util use the global scene)."""
    import slicer

    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


@pytest.fixture(scope="session")
def quick():
    from ElastixMonaiLabelLib.synthetic.quick_subject import make_quick_subject

    return make_quick_subject(seed=3)


def saved_and_reloaded(scene, folder: Path):
    """``scene`` saved with its data (vtkMRMLApplicationLogic.SaveSceneToSlicerDataBundleDirectory: each storable node
    through its storage node, what Save Data and a .mrb do) in ``folder``, then read into a new scene."""
    import slicer

    logic = slicer.vtkMRMLApplicationLogic()
    logic.SetMRMLScene(scene)
    folder.mkdir()
    assert logic.SaveSceneToSlicerDataBundleDirectory(str(folder))
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetURL(str(folder / f"{folder.name}.mrml"))
    assert reloaded.Import()
    return reloaded


def headless_widget(eml, logic=None):
    """The module's widget without Qt: its state as __init__ sets it, and ``ui`` with one bare namespace per widget
    of the .ui (attributes only: a Qt method called on one raises AttributeError). Runs the widget's own methods
    that only set widget properties (job polling, progress, status)."""
    from ElastixMonaiLabelLib.runtime.jobs import JobBoard
    import qt

    widget = eml.ElastixMonaiLabelWidget.__new__(eml.ElastixMonaiLabelWidget)
    eml.VTKObservationMixin.__init__(widget)
    names = {w.get("name") for w in ElementTree.parse(UI_FILE).iter("widget")}
    widget.ui = SimpleNamespace(**{name: SimpleNamespace() for name in names})
    widget.logic, widget._parameterNode, widget._parameterNodeGuiTag = logic or eml.ElastixMonaiLabelLogic(), None, None
    widget._jobs, widget._serverInfo, widget._training, widget._seen = JobBoard(), {}, None, {}
    widget._comparison = views.Comparison()
    widget._timer = qt.QTimer()
    return widget
