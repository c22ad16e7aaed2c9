"""Slicer's own rules (Testing/slicer_rules.py, read from Slicer's source at named commits) applied to the module.

3D Slicer cannot run here: these checks are what stands between the module and a RuntimeError in
connectGui or an AttributeError on a name Slicer 5.10 or 5.12 does not have. Each rule is also shown
to bite: a wrong binding or an unknown name planted in a copy of the files makes the checker fail.
"""

import ast
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import slicer_rules as rules

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "ElastixMonaiLabel"
MODULE_SOURCE = (MODULE / "ElastixMonaiLabel.py").read_text()
LAYER_SOURCES = [path.read_text() for path in sorted((MODULE / "ElastixMonaiLabelSlicer").glob("*.py"))]
UI_TEXT = (MODULE / "Resources" / "UI" / "ElastixMonaiLabel.ui").read_text()


def library_namespace(source: str) -> dict:
    """The names a module source imports from its own pure-Python library (what its annotations may use)."""
    namespace: dict = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ElastixMonaiLabelLib"):
            exec(compile(ast.Module([node], []), "<imports>", "exec"), namespace)
    return namespace


def library_names() -> set[str]:
    """Names the project's library defines (so that its own camelCase names are not taken for Slicer's)."""
    names = set()
    for path in (MODULE / "ElastixMonaiLabelLib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def problems(ui_text=UI_TEXT, module_source=MODULE_SOURCE) -> list[str]:
    return rules.binding_problems(ui_text, module_source, library_namespace(module_source))


def with_binding(widget_name: str, parameter: str, ui_text: str = UI_TEXT) -> str:
    """A copy of the .ui in which ``widget_name`` carries SlicerParameterName=``parameter`` (replacing any)."""
    root = ElementTree.fromstring(ui_text)
    widget = next(w for w in root.iter("widget") if w.get("name") == widget_name)
    for old in [p for p in widget.findall("property") if p.get("name") == "SlicerParameterName"]:
        widget.remove(old)
    prop = ElementTree.SubElement(widget, "property", name="SlicerParameterName", stdset="0")
    ElementTree.SubElement(prop, "string", notr="true").text = parameter
    return ElementTree.tostring(root, encoding="unicode")


def test_every_binding_is_a_pair_slicers_gui_connectors_accept():
    bindings = rules.ui_bindings(UI_TEXT)
    assert problems() == []
    # The kinds of binding the issue was about are there, now with the annotations Slicer needs.
    kinds = {(b.widget_class, b.parameter) for b in bindings}
    assert {("QComboBox", "preset"), ("QComboBox", "engine"), ("QComboBox", "compareMode"),
            ("ctkSliderWidget", "compareOpacity"), ("QSpinBox", "trainingEpochs")} <= kinds
    fields = rules.parameter_types(MODULE_SOURCE, library_namespace(MODULE_SOURCE))
    assert fields["preset"].validators["Choice"][0][0] == "brain-rigid"
    assert fields["compareOpacity"].validators["WithinRange"] == [0.0, 1.0]
    # Server-dependent choices are not bound (their items come from /info/), nor is the token (not in the scene).
    bound = {b.parameter for b in bindings} | {b.widget for b in bindings}
    assert not {"model", "strategy", "modelComboBox", "strategyComboBox", "serverTokenLineEdit"} & bound
    assert not any("token" in name.lower() for name in fields)


PLANTED = [
    ("combo box bound to a plain str", None, ('preset: Annotated[str, Choice([p.name for p in list_presets()])] = "brain-rigid"',
                                              'preset: str = "brain-rigid"'),
     "presetComboBox (QComboBox) -> preset: QComboBoxToStringableConnector requires the Choice annotation"),
    ("slider bound to an unbounded float", None, ("compareOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5",
                                                 "compareOpacity: float = 0.5"),
     "compareOpacitySlider (ctkSliderWidget) -> compareOpacity: QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector refuses"),
    ("spin box bound to an unbounded int", None, ("trainingEpochs: Annotated[int, WithinRange(1, 1000)] = 10",
                                                 "trainingEpochs: int = 10"),
     "epochsSpinBox (QSpinBox) -> trainingEpochs: unbounded int: QSliderOrSpinBoxToIntConnector replaces the range"),
    ("default outside its Choice", None, ('Choice(list(ENGINE_CHOICES))] = "auto"', 'Choice(list(ENGINE_CHOICES))] = "fast"'),
     "engine: default 'fast' is not one of its Choice"),
    ("server model list bound to a str", ("modelComboBox", "model"), None,
     "modelComboBox (QComboBox) -> model: QComboBoxToStringableConnector requires the Choice annotation"),
    ("plain-text edit has no connector", ("logTextEdit", "serverUrl"), None,
     "logTextEdit (QPlainTextEdit) -> serverUrl: no GUI connector for (QPlainTextEdit, str)"),
    ("list parameter has no connector", ("movingTable", "movingModalities"), None,
     "movingTable (QTableWidget) -> movingModalities: no GUI connector for (QTableWidget, list)"),
    ("parameter that does not exist", ("serverUrlLineEdit", "serverAddress"), None,
     "serverUrlLineEdit (QLineEdit) -> serverAddress: no such parameter"),
]


@pytest.mark.parametrize("binding, source_edit, expected", [p[1:] for p in PLANTED], ids=[p[0] for p in PLANTED])
def test_a_planted_wrong_binding_is_refused(binding, source_edit, expected):
    ui_text, module_source = UI_TEXT, MODULE_SOURCE
    if binding:
        ui_text = with_binding(*binding)
    if source_edit:
        assert source_edit[0] in module_source, "the planted edit no longer matches the module: update the test"
        module_source = module_source.replace(source_edit[0], source_edit[1])
    found = problems(ui_text, module_source)
    assert any(expected in problem for problem in found), found


def test_connector_table_keeps_slicers_order_and_exact_classes():
    names = [c.name for c in rules.GUI_CONNECTORS]
    assert len(names) == len(set(names))
    # createGuiConnector takes the first connector that can represent the pair: for QComboBox + str that is the
    # stringable one, which then insists on Choice (it never falls through to the Enum connector).
    assert names.index("QComboBoxToStringableConnector") < names.index("QComboBoxToEnumConnector")
    plain = rules.ParameterType("str")
    assert [c.name for c in rules.GUI_CONNECTORS if "QComboBox" in c.widgets and plain.base in c.types] == [
        "QComboBoxToStringableConnector"]
    # type(widget) is compared exactly: QPlainTextEdit is not a QTextEdit for guiConnectors.
    assert not any("QPlainTextEdit" in c.widgets for c in rules.GUI_CONNECTORS)


def test_every_slicer_qt_vtk_name_the_module_uses_was_checked_against_slicer():
    uses = rules.api_uses([MODULE_SOURCE, *LAYER_SOURCES], UI_TEXT, library_names())
    used = uses["dotted"] | uses["widget"] | uses["method"]
    unknown = sorted(used - rules.API.keys())
    assert not unknown, ("names not checked against Slicer 5.10/5.12 (check with scripts/check_slicer_api.py, then add "
                         f"them to slicer_rules.API): {unknown}")
    assert not sorted(rules.API.keys() - used), "slicer_rules.API lists names the module no longer uses"


def test_a_planted_unknown_name_is_refused():
    planted = MODULE_SOURCE + "\n\ndef _planted(node):\n    slicer.util.arrayFromVolumeFast(node)\n    node.GetParentTransformNodes()\n"
    uses = rules.api_uses([planted, *LAYER_SOURCES], UI_TEXT, library_names())
    unknown = (uses["dotted"] | uses["method"]) - rules.API.keys()
    assert unknown == {"slicer.util.arrayFromVolumeFast", "GetParentTransformNodes"}


def test_what_only_slicer_5_12_has_is_used_behind_a_guard():
    for name in rules.ONLY_IN_5_12:
        sources = [s for s in (MODULE_SOURCE, *LAYER_SOURCES) if f".{name}" in s]
        assert sources, f"{name} is no longer used: drop it from ONLY_IN_5_12 and API"
        assert all(rules.guarded(source, name) for source in sources), name
    # And a use without its guard is caught.
    unguarded = MODULE_SOURCE.replace('if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):',
                                      "if True:")
    assert unguarded != MODULE_SOURCE and not rules.guarded(unguarded, "registerCustomSampleDataCategory")


def test_loading_the_module_needs_nothing_slicer_does_not_ship():
    """Slicer imports the module file at startup: its library imports must work with numpy alone (no itk,
    nibabel or scipy; the latter ships with Slicer but is only needed once work starts)."""
    import subprocess
    import sys
    import textwrap

    imports = [ast.unparse(n) for n in ast.parse(MODULE_SOURCE).body
               if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ElastixMonaiLabelLib")]
    script = "import sys\nfor name in ('itk', 'nibabel', 'scipy', 'torch', 'monai'):\n    sys.modules[name] = None\n"
    run = subprocess.run([sys.executable, "-c", script + "\n".join(imports)], capture_output=True, text=True,
                         env={"PYTHONPATH": str(MODULE), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run.returncode == 0, textwrap.shorten(run.stderr, 2000)
    assert len(imports) >= 5
