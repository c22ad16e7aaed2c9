"""Slicer's own rules for a scripted module, written down as data, and a checker that applies them statically.

3D Slicer cannot run on the machines this project is built on, so the module's use of Slicer is
checked against Slicer's source instead: read once at the commits below, the rules kept here as
data (not Slicer's code). Testing/slicer/test_slicer_rules.py applies them to ElastixMonaiLabel.py, its
.ui and ElastixMonaiLabelSlicer/*.py; scripts/check_slicer_api.py re-checks every API
entry below against a Slicer checkout (``python scripts/check_slicer_api.py SLICER_GIT_DIR``).
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

SLICER = {
    "repository": "https://github.com/Slicer/Slicer",
    "v5.10.0": "a2b6d082be04274a849884fbb1e85634a9df90fb",
    "v5.12.3": "9034c71a8fce68ab312458b3d7d16f610562263d",
    "main": "583e9b37d50ead7daf7b783dce465ccaecec8809",  # 2026-08-21, also read
}
SLICER_ELASTIX = {"repository": "https://github.com/lassoan/SlicerElastix", "commit": "507db1994cfd717cbf77cbfb0e2c6920caf9bbb0"}

# --- Parameter-node GUI connectors ------------------------------------------------------------------------------
# Base/Python/slicer/parameterNodeWrapper/guiConnectors.py, blob c0b71ebfa21526a56ef6dd9bcbb0d6b7a7e229e0: the same
# file at v5.10.0, v5.12.3 and main. connectGui (wrapper.py) calls createGuiConnector for every widget whose
# "SlicerParameterName" property names a parameter; it tries the connectors in the order they are registered (this
# order), the first whose canRepresent(widget, type) is true is created, and its constructor may still raise; when
# none can represent the pair it raises RuntimeError. canRepresent compares type(widget) exactly (no subclasses).
# "needs": what the constructor raises without; "range": the constructor sets the widget's range from WithinRange or
# Minimum/Maximum, or else to the whole type's range (QSpinBox: -2**31..2**31-1; float widgets: -inf..inf).


@dataclass(frozen=True)
class Connector:
    name: str
    widgets: frozenset[str]
    types: frozenset[str]
    needs: str | None = None  # "Choice", "RangeBounds", or "bounds" (WithinRange, or both Minimum and Maximum)
    needs_for: frozenset[str] = frozenset()  # widgets the requirement applies to (empty: all of them)
    sets_range: bool = False


PATH_TYPES = frozenset({"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"})
GUI_CONNECTORS = (
    Connector("QCheckBoxToBoolConnector", frozenset({"QCheckBox", "ctkCheckBox"}), frozenset({"bool"})),
    Connector("QCheckablePushButtonToBoolConnector", frozenset({"QPushButton"}), frozenset({"bool"})),
    Connector("ctkCheckablePushButtonToBoolConnector", frozenset({"ctkCheckablePushButton"}), frozenset({"bool"})),
    Connector("QSliderOrSpinBoxToIntConnector", frozenset({"QSlider", "QSpinBox"}), frozenset({"int"}),
              needs="bounds", needs_for=frozenset({"QSlider"}), sets_range=True),
    Connector("QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector",
              frozenset({"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
                         "qMRMLSpinBox"}), frozenset({"float", "int"}),
              needs="bounds", needs_for=frozenset({"ctkSliderWidget", "qMRMLSliderWidget"}), sets_range=True),
    Connector("QComboBoxToStringableConnector", frozenset({"QComboBox", "ctkComboBox"}),
              frozenset({"int", "float", "str", "bool"}), needs="Choice"),
    Connector("QComboBoxToEnumConnector", frozenset({"QComboBox", "ctkComboBox"}), frozenset({"Enum"})),
    Connector("QLineEditToStrConnector", frozenset({"QLineEdit"}), frozenset({"str"})),
    Connector("QLabelToStrConnector", frozenset({"QLabel"}), frozenset({"str"})),
    Connector("QTextEditPlainTextToStrConnector", frozenset({"QTextEdit"}), frozenset({"str"})),
    Connector("ctkRangeWidgetToRangeConnector", frozenset({"ctkRangeWidget", "ctkDoubleRangeSlider", "qMRMLRangeWidget"}),
              frozenset({"FloatRange"}), needs="RangeBounds"),
    Connector("ctkPathLineEditToPathConnector", frozenset({"ctkPathLineEdit"}), PATH_TYPES),
    Connector("ctkDirectoryButtonToPathConnector", frozenset({"ctkDirectoryButton"}), PATH_TYPES),
    Connector("qMRMLNodeComboBoxToNodeConnector", frozenset({"qMRMLNodeComboBox"}), frozenset({"node"})),
    Connector("ctkColorPickerButtonToQColorConnector", frozenset({"ctkColorPickerButton"}), frozenset({"QColor"})),
    # WidgetChildrenToParameterPackConnector (parameterPack types) is not listed: this module has no parameter pack.
)


@dataclass
class ParameterType:
    """A parameter's annotation as guiConnectors sees it: the unannotated type and the validator annotations."""

    base: str  # "str", "int", "float", "bool", "node", "Enum", "list", "FloatRange", "QColor", a path type, or other
    validators: dict[str, list] = field(default_factory=dict)  # validator name -> evaluated arguments
    default: object = None

    @property
    def bounded(self) -> bool:
        return "WithinRange" in self.validators or {"Minimum", "Maximum"} <= self.validators.keys()


def _base_name(node: ast.expr, enums: set[str]) -> str:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # A | B: a union of node types
        sides = {_base_name(node.left, enums), _base_name(node.right, enums)} - {"NoneType"}
        return "node" if sides == {"node"} else "union"
    if isinstance(node, ast.Constant) and node.value is None:
        return "NoneType"
    if isinstance(node, ast.Subscript):
        return "list" if ast.unparse(node.value) in ("list", "typing.List", "List") else ast.unparse(node.value)
    name = ast.unparse(node).split(".")[-1]
    if re.fullmatch(r"vtkMRML\w*Node", name):
        return "node"
    return "Enum" if name in enums else name


def parameter_types(module_source: str, namespace: dict | None = None) -> dict[str, ParameterType]:
    """The fields of the module's @parameterNodeWrapper class. Validator arguments are evaluated in ``namespace``
    (the names the module imports from its own pure-Python library)."""
    tree = ast.parse(module_source)
    enums = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
             and any(ast.unparse(b).split(".")[-1] in ("Enum", "StrEnum", "IntEnum") for b in n.bases)}
    wrapped = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
               and any(ast.unparse(d).split(".")[-1] == "parameterNodeWrapper" for d in n.decorator_list)]
    if len(wrapped) != 1:
        raise AssertionError(f"expected one @parameterNodeWrapper class, found {len(wrapped)}")
    fields = {}
    for statement in wrapped[0].body:
        if not isinstance(statement, ast.AnnAssign):
            continue
        annotation, validators = statement.annotation, {}
        if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value).split(".")[-1] == "Annotated":
            parts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
            annotation = parts[0]
            for extra in parts[1:]:
                if isinstance(extra, ast.Call):
                    validators[ast.unparse(extra.func).split(".")[-1]] = [
                        eval(compile(ast.Expression(argument), "<annotation>", "eval"), dict(namespace or {}))
                        for argument in extra.args]
        default = ast.literal_eval(statement.value) if statement.value is not None else None
        fields[statement.target.id] = ParameterType(_base_name(annotation, enums), validators, default)
    return fields


@dataclass
class Binding:
    widget: str
    widget_class: str
    parameter: str
    ui_properties: dict[str, str]
    ui_items: list[str]


def ui_bindings(ui_text: str) -> list[Binding]:
    """Widgets of a .ui carrying the dynamic property SlicerParameterName."""
    bindings = []
    for widget in ElementTree.fromstring(ui_text).iter("widget"):
        properties = {p.get("name"): "".join(p.itertext()).strip() for p in widget.findall("property")}
        if "SlicerParameterName" in properties:
            items = ["".join(i.itertext()).strip() for i in widget.findall("item")]
            bindings.append(Binding(widget.get("name"), widget.get("class"), properties["SlicerParameterName"], properties, items))
    return bindings


def binding_problems(ui_text: str, module_source: str, namespace: dict | None = None) -> list[str]:
    """Every binding connectGui would refuse (or that would silently change the widget), as messages; [] when none."""
    fields, problems = parameter_types(module_source, namespace), []
    for name, kind in fields.items():
        if "Choice" in kind.validators and kind.default is not None and kind.default not in kind.validators["Choice"][0]:
            problems.append(f"{name}: default {kind.default!r} is not one of its Choice {kind.validators['Choice'][0]}")
        if "WithinRange" in kind.validators and kind.default is not None:
            low, high = kind.validators["WithinRange"]
            if not low <= kind.default <= high:
                problems.append(f"{name}: default {kind.default!r} is outside WithinRange({low}, {high})")
    for binding in ui_bindings(ui_text):
        where = f"{binding.widget} ({binding.widget_class}) -> {binding.parameter}"
        kind = fields.get(binding.parameter)
        if kind is None:
            problems.append(f"{where}: no such parameter (connectGui raises ValueError)")
            continue
        connector = next((c for c in GUI_CONNECTORS if binding.widget_class in c.widgets and kind.base in c.types), None)
        if connector is None:
            problems.append(f"{where}: no GUI connector for ({binding.widget_class}, {kind.base}) in guiConnectors.py "
                            "(connectGui raises RuntimeError)")
            continue
        required = not connector.needs_for or binding.widget_class in connector.needs_for
        if connector.needs == "Choice" and "Choice" not in kind.validators:
            problems.append(f"{where}: {connector.name} requires the Choice annotation (RuntimeError in connectGui)")
        elif connector.needs == "bounds" and required and not kind.bounded:
            problems.append(f"{where}: {connector.name} refuses an unbounded {kind.base} for {binding.widget_class} "
                            "(RuntimeError in connectGui): annotate WithinRange")
        elif connector.needs == "RangeBounds" and "RangeBounds" not in kind.validators:
            problems.append(f"{where}: {connector.name} requires RangeBounds (RuntimeError in connectGui)")
        if connector.sets_range and not kind.bounded and {"minimum", "maximum"} & binding.ui_properties.keys():
            problems.append(f"{where}: unbounded {kind.base}: {connector.name} replaces the range the .ui sets "
                            "with the whole type's range: annotate WithinRange")
        if "Choice" in kind.validators and binding.ui_items and binding.ui_items != [str(c) for c in kind.validators["Choice"][0]]:
            problems.append(f"{where}: the .ui items {binding.ui_items} differ from the Choice, which replaces them")
    return problems


# --- Slicer, Qt, VTK and CTK names the module uses ---------------------------------------------------------------
# What counts as a name the module uses (api_uses): (1) every attribute chain that starts at slicer, qt, vtk, ctk, or
# the modules SampleData and Elastix, written as it appears ("slicer.util.arrayFromVolume",
# "slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode"); (2) every attribute read, written or
# called on a widget of the .ui, as "<widget class>.<name>"; (3) every other camelCase attribute the code does not
# define itself (MRML, VTK and Qt methods on nodes and objects: "GetParentTransformNode", "blockSignals"...).

ROOTS = ("slicer", "qt", "vtk", "ctk", "SampleData", "Elastix")


def _chain(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Call):
        inner = _chain(node.func)
        return None if inner is None else ".".join([inner + "()", *reversed(parts)])
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _defined_names(trees: list[ast.AST]) -> set[str]:
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, (ast.Assign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                        if isinstance(element, ast.Attribute) and ast.unparse(element.value) in ("self", "cls"):
                            names.add(element.attr)
    return names


def api_uses(sources: list[str], ui_text: str, own_library: set[str] = frozenset()) -> dict[str, set[str]]:
    """{"dotted": ..., "widget": ..., "method": ...}: the names of the three kinds above used by ``sources``.
    ``own_library``: names defined by the project's pure-Python library (its classes' camelCase attributes)."""
    widget_classes = {w.get("name"): w.get("class") for w in ElementTree.fromstring(ui_text).iter("widget")}
    trees = [ast.parse(source) for source in sources]
    defined = _defined_names(trees) | set(own_library)
    uses: dict[str, set[str]] = {"dotted": set(), "widget": set(), "method": set()}
    for tree in trees:
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain = _chain(node)
            if chain and chain.split(".")[0] in ROOTS and not isinstance(parents.get(node), ast.Attribute):
                uses["dotted"].add(chain)
                continue
            if chain and chain.split(".")[0] in ROOTS:
                continue  # inside a longer chain from a root: counted there
            if chain and chain.startswith("self.ui.") and chain.count(".") == 3:
                uses["widget"].add(f"{widget_classes.get(chain.split('.')[2], '?')}.{node.attr}")
            elif chain and chain.startswith("self.ui.") and chain.count(".") == 2:
                continue  # a widget of the .ui (test_extension_layout checks that it exists)
            elif re.search(r"[A-Z]", node.attr) and not node.attr.startswith("__") and node.attr not in defined:
                uses["method"].add(node.attr)
    return uses


def guarded(source: str, name: str) -> bool:
    """True when every use of ``name`` sits under ``if hasattr(..., "name")`` or in the ``else`` of a try whose
    handler catches ImportError (how the module uses what only Slicer 5.12 has)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    uses = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == name]
    if not uses:
        return False
    for use in uses:
        node, safe = use, False
        while node in parents and not safe:
            parent = parents[node]
            if isinstance(parent, ast.If) and node in parent.body and any(
                    isinstance(call, ast.Call) and ast.unparse(call.func) == "hasattr" and isinstance(call.args[-1], ast.Constant)
                    and call.args[-1].value == name for call in ast.walk(parent.test)):
                safe = True
            if isinstance(parent, ast.Try) and node in parent.orelse and any(
                    "ImportError" in ast.unparse(h.type or ast.Name("BaseException")) for h in parent.handlers):
                safe = True
            node = parent
        if not safe:
            return False
    return True


# Where each name comes from, read at SLICER["v5.10.0"] and SLICER["v5.12.3"] (scripts/check_slicer_api.py checks
# these entries again). A path is a file of Slicer's repository that defines the name (a "path::regex" entry: the
# name is made by a macro there); "Qt", "VTK" and "PythonQt": not Slicer's code, so the script looks for the name in
# Slicer's own Python code at both tags instead (evidence that Slicer's Python exposes it; "Qt:Other": Slicer uses
# Other, a value of the same Qt enum, which PythonQt wraps whole); "SlicerElastix:path": a
# file of SlicerElastix at SLICER_ELASTIX["commit"]; "Python" and "numpy": the language and numpy.
UTIL = "Base/Python/slicer/util.py"
MRML = "Libs/MRML/Core/"
SEGMENTATIONS = "Modules/Loadable/Segmentations/Logic/vtkSlicerSegmentationsModuleLogic.h"
SCRIPTED = "Base/Python/slicer/ScriptedLoadableModule.py"
API = {
    # slicer.*, SampleData, Elastix, qt.*, vtk.* chains
    "Elastix.ElastixLogic": "SlicerElastix:Elastix/Elastix.py",
    "SampleData.SampleDataLogic": "Modules/Scripted/SampleData/SampleData.py",
    "SampleData.SampleDataLogic.registerCustomSampleDataSource": "Modules/Scripted/SampleData/SampleData.py",
    "SampleData.SampleDataLogic.registerCustomSampleDataCategory": "Modules/Scripted/SampleData/SampleData.py",  # 5.12
    "qt.QEventLoop.WaitForMoreEvents": "Qt:ExcludeUserInputEvents",  # QEventLoop::ProcessEventsFlag, as Slicer passes it
    "qt.QTableWidgetItem": "Qt",
    "qt.QTimer": "Qt",
    "qt.Qt.ItemIsEditable": "Qt",
    "qt.Qt.ToolTipRole": "Qt",
    "slicer.app.connect": "PythonQt",
    "slicer.app.processEvents": "Qt",
    "slicer.app.slicerUserSettingsFilePath": "Base/QTCore/qSlicerCoreApplication.h",
    "slicer.app.temporaryPath": "Base/QTCore/qSlicerCoreApplication.h",
    "slicer.app.testingEnabled": r"Base/QTCore/qSlicerBaseQTCorePythonQtDecorators.h::_testingEnabled\(",
    "slicer.modules.ElastixMonaiLabelWidget.onGenerateSample": "Base/QTGUI/qSlicerScriptedLoadableModuleWidget.cxx::slicer.modules.",
    "slicer.modules.segmenteditor.widgetRepresentation": "Base/QTCore/qSlicerAbstractCoreModule.h",
    "slicer.modules.segmenteditor.widgetRepresentation().self": "Base/QTGUI/qSlicerScriptedLoadableModuleWidget.h",
    "slicer.modules.segmenteditor.widgetRepresentation().self().editor": "Modules/Scripted/SegmentEditor/SegmentEditor.py::self.editor",
    "slicer.mrmlScene": "Base/Python/slicer/__init__.py::mrmlScene",
    "slicer.mrmlScene.AddNewNodeByClass": MRML + "vtkMRMLScene.h",
    "slicer.mrmlScene.Clear": MRML + "vtkMRMLScene.h",
    "slicer.mrmlScene.EndCloseEvent": MRML + "vtkMRMLScene.h",
    "slicer.mrmlScene.GenerateUniqueName": MRML + "vtkMRMLScene.h",
    "slicer.mrmlScene.GetFirstNodeByName": MRML + "vtkMRMLScene.h",
    "slicer.mrmlScene.RemoveNode": MRML + "vtkMRMLScene.h",
    "slicer.mrmlScene.StartCloseEvent": MRML + "vtkMRMLScene.h",
    "slicer.packaging.load_requirements": "Base/Python/slicer/packaging.py",  # 5.12 only
    "slicer.packaging.pip_ensure": "Base/Python/slicer/packaging.py",  # 5.12 only
    "slicer.util.NodeModify": UTIL,
    "slicer.util.arrayFromVTKMatrix": UTIL,
    "slicer.util.arrayFromVolume": UTIL,
    "slicer.util.arrayFromVolume().astype": "numpy",
    "slicer.util.arrayFromVTKMatrix().tolist": "numpy",
    "slicer.util.childWidgetVariables": UTIL,
    "slicer.util.confirmOkCancelDisplay": UTIL,
    "slicer.util.confirmYesNoDisplay": UTIL,
    "slicer.util.errorDisplay": UTIL,
    "slicer.util.getNodesByClass": UTIL,
    "slicer.util.loadUI": UTIL,
    "slicer.util.pip_install": UTIL,
    "slicer.util.selectModule": UTIL,
    "slicer.util.setSliceViewerLayers": UTIL,
    "slicer.util.tryWithErrorDisplay": UTIL,
    "slicer.util.updateVolumeFromArray": UTIL,
    "slicer.util.vtkMatrixFromArray": UTIL,
    "slicer.vtkMRMLTransformNode.GetFixedNodeReferenceRole": MRML + "vtkMRMLTransformNode.h",
    "slicer.vtkMRMLTransformNode.GetMovingNodeReferenceRole": MRML + "vtkMRMLTransformNode.h",
    "slicer.vtkMRMLTransformStorageNode": MRML + "vtkMRMLTransformStorageNode.h",
    "slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName": "Libs/vtkSegmentationCore/vtkSegmentationConverter.h",
    "slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode": SEGMENTATIONS,  # static
    "slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode": SEGMENTATIONS,  # static
    "slicer.vtkSlicerVolumesLogic.CloneVolume": "Modules/Loadable/Volumes/Logic/vtkSlicerVolumesLogic.h",  # static (scene,...)
    "vtk.vtkCommand.ModifiedEvent": "VTK",
    "vtk.vtkMatrix4x4": "VTK",
    "vtk.vtkStringArray": "VTK",
    # members of the .ui's widgets (PythonQt exposes Qt properties as attributes)
    "QComboBox.connect": "PythonQt",
    "QComboBox.currentText": "Qt",
    "QComboBox.setItemData": "Qt",
    "QLabel.text": "Qt",
    "QLineEdit.text": "Qt",
    "QPlainTextEdit.appendPlainText": "Qt",
    "QPlainTextEdit.clear": "Qt",
    "QProgressBar.visible": "Qt",
    "QPushButton.enabled": "Qt",
    "QPushButton.text": "Qt",
    "QPushButton.toolTip": "Qt",
    "QTableWidget.connect": "PythonQt",
    "QTableWidget.item": "Qt",
    "QTableWidget.selectedIndexes": "Qt",
    "QTableWidget.setRowCount": "Qt",
    "qMRMLNodeComboBox.currentNode": "Libs/MRML/Widgets/qMRMLNodeComboBox.h",
    # camelCase members of nodes and other objects
    "AddDefaultStorageNode": MRML + "vtkMRMLStorableNode.h",
    "CopyOrientation": MRML + "vtkMRMLVolumeNode.h",
    "CreateDefaultDisplayNodes": MRML + "vtkMRMLDisplayableNode.h",
    "GetAttribute": MRML + "vtkMRMLNode.h",
    "GetColor": r"Libs/vtkSegmentationCore/vtkSegment.h::vtkGetVector3Macro\(Color,",
    "GetColorNodeID": MRML + "vtkMRMLDisplayNode.h",
    "GetDimensions": "VTK",
    "GetDisplayNode": MRML + "vtkMRMLDisplayableNode.h",
    "GetExtent": "VTK",
    "GetID": MRML + r"vtkMRMLNode.h::vtkGetStringMacro\(ID\)",
    "GetIJKToRASMatrix": MRML + "vtkMRMLVolumeNode.h",
    "GetImageData": MRML + "vtkMRMLVolumeNode.h",
    "GetImageToWorldMatrix": "Libs/vtkSegmentationCore/vtkOrientedImageData.h",
    "GetLabelValue": r"Libs/vtkSegmentationCore/vtkSegment.h::vtkGetMacro\(LabelValue,",
    "GetLayerDataObject": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetLayerIndex": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetMTime": "VTK",
    "GetMatrixTransformToWorld": MRML + "vtkMRMLTransformNode.h",
    "GetName": MRML + r"vtkMRMLNode.h::vtkGetStringMacro\(Name\)",
    "GetNodeReference": MRML + "vtkMRMLNode.h",
    "GetNthSegment": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetNthSegmentID": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetNumberOfLayers": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetNumberOfSegments": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetParentTransformNode": MRML + "vtkMRMLTransformableNode.h",
    "GetPointData": "VTK",
    "GetScalars": "VTK",
    "GetSegment": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "GetSegmentation": MRML + r"vtkMRMLSegmentationNode.h::vtkGetObjectMacro\(Segmentation",
    "GetSourceRepresentationName": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "InsertNextValue": "VTK",
    "IsTransformToWorldLinear": MRML + "vtkMRMLTransformNode.h",
    "ReadData": MRML + "vtkMRMLStorageNode.h",
    "RemoveAllSegments": "Libs/vtkSegmentationCore/vtkSegmentation.h",
    "SetAndObserveColorNodeID": MRML + "vtkMRMLDisplayNode.h",
    "SetAndObserveTransformNodeID": MRML + "vtkMRMLTransformableNode.h",
    "SetAttribute": MRML + "vtkMRMLNode.h",
    "SetColor": MRML + "vtkMRMLColorTableNode.h",
    "SetFileName": MRML + "vtkMRMLStorageNode.h",
    "SetIJKToRASMatrix": MRML + "vtkMRMLVolumeNode.h",
    "SetMatrixTransformFromParent": MRML + "vtkMRMLTransformNode.h",
    "SetMatrixTransformToParent": MRML + "vtkMRMLTransformNode.h",
    "SetNodeReferenceID": MRML + "vtkMRMLNode.h",
    "SetNumberOfColors": MRML + "vtkMRMLColorTableNode.h",
    "SetReferenceImageGeometryParameterFromVolumeNode": MRML + "vtkMRMLSegmentationNode.h",
    "SetTypeToUser": MRML + "vtkMRMLColorNode.h",
    "SkipTest": "Python",
    "StorableModified": MRML + "vtkMRMLStorableNode.h",
    "TemporaryDirectory": "Python",  # tempfile's (registration_nodes.py: the displacement field on disk while read)
    "acknowledgementText": "Base/QTCore/qSlicerAbstractCoreModule.h",
    "addItems": "Qt",
    "addObserver": "Base/Python/slicer/util.py::def addObserver",
    "addWidget": "Qt",
    "assertEqual": "Python",
    "assertGreater": "Python",
    "assertIs": "Python",
    "assertLess": "Python",
    "blockSignals": "Qt",
    "connectGui": "Base/Python/slicer/parameterNodeWrapper/wrapper.py",
    "delayDisplay": SCRIPTED,
    "disconnectGui": "Base/Python/slicer/parameterNodeWrapper/wrapper.py",
    "elastixFilename": "SlicerElastix:Elastix/Elastix.py",
    "findText": "Qt",
    "getElastixBinDir": "SlicerElastix:Elastix/Elastix.py",
    "getElastixEnv": "SlicerElastix:Elastix/Elastix.py",
    "helpText": "Base/QTCore/qSlicerAbstractCoreModule.h",
    "isEntered": "Base/QTGUI/qSlicerAbstractModuleWidget.h",
    "removeObserver": "Base/Python/slicer/util.py::def removeObserver",
    "removeObservers": "Base/Python/slicer/util.py::def removeObservers",
    "setCurrentIndex": "Qt",
    "setFlags": "Qt",
    "setInterval": "Qt",
    "setItem": "Qt",
    "setMRMLScene": "Libs/MRML/Widgets/qMRMLWidget.h",
    "setRowCount": "Qt",
    "setSegmentationNode": "Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.h",
    "setSourceVolumeNode": "Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.h",
    "skipTest": "Python",
    "transformixFilename": "SlicerElastix:Elastix/Elastix.py",
}
# What Slicer 5.10 lacks: the module may use these only behind a guard (see guarded()).
ONLY_IN_5_12 = {"registerCustomSampleDataCategory": "SampleData.SampleDataLogic", "pip_ensure": "slicer.packaging",
                "load_requirements": "slicer.packaging"}
