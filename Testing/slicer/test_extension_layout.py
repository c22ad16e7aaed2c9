"""Static checks of the Slicer extension: what can be verified without running Slicer."""

import ast
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "ElastixMonaiLabel"
LIB = MODULE / "ElastixMonaiLabelLib"
MODULE_FILE = MODULE / "ElastixMonaiLabel.py"
UI_FILE = MODULE / "Resources" / "UI" / "ElastixMonaiLabel.ui"

# Fields of Slicer's catalog-entry schema v1.0.1 (Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json).
CATALOG_FIELDS = {
    "$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
    "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int,
}
CATALOG_REQUIRED = {"$schema", "category", "scm_url"}
# Widget classes the .ui may use: Qt's, CTK's and Slicer's (qMRML*) that loadUI knows.
KNOWN_WIDGETS = {
    "QWidget", "QLabel", "QPushButton", "QComboBox", "QCheckBox", "QSpinBox", "QDoubleSpinBox", "QLineEdit",
    "QPlainTextEdit", "QTextEdit", "QProgressBar", "QGroupBox", "QListWidget", "QTableWidget", "QToolButton",
    "QRadioButton", "QFrame", "QTabWidget", "QSlider",
    "ctkCollapsibleButton", "ctkSliderWidget", "ctkPathLineEdit", "ctkCheckableComboBox", "ctkMenuButton",
    "ctkCollapsibleGroupBox", "ctkDirectoryButton",
    "qMRMLWidget", "qMRMLNodeComboBox", "qMRMLCheckableNodeComboBox", "qMRMLSegmentSelectorWidget",
    "qMRMLSubjectHierarchyTreeView", "qMRMLSpinBox",
}


def cmake_list(path: Path, variable: str) -> list[str]:
    text = path.read_text()
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} not found in {path}"
    return [item.replace("${MODULE_NAME}", "ElastixMonaiLabel") for item in match.group(1).split()]


def test_every_lib_file_is_listed_in_cmake():
    listed = set(cmake_list(MODULE / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS"))
    packages = (LIB, MODULE / "ElastixMonaiLabelSlicer")
    present = {p.relative_to(MODULE).as_posix() for package in packages for p in package.rglob("*.py")} | {"ElastixMonaiLabel.py"}
    assert present == listed


def test_every_resource_is_listed_in_cmake():
    listed = set(cmake_list(MODULE / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES"))
    present = {p.relative_to(MODULE).as_posix() for p in (MODULE / "Resources").rglob("*") if p.is_file()}
    assert present == listed


def test_module_folder_holds_no_other_python_file():
    # Every .py directly in a module folder is loaded by Slicer as a module.
    assert sorted(p.name for p in MODULE.glob("*.py")) == ["ElastixMonaiLabel.py"]


def test_catalog_entry_follows_the_schema_and_matches_cmake():
    entry = json.loads((ROOT / "ElastixMonaiLabel.json").read_text())
    assert CATALOG_REQUIRED <= entry.keys() <= CATALOG_FIELDS.keys()
    for key, value in entry.items():
        assert isinstance(value, CATALOG_FIELDS[key]), key
    assert "catalog-entry-schema-v1.0" in entry["$schema"]
    assert 1 <= entry["tier"] <= 5
    top = (ROOT / "CMakeLists.txt").read_text()
    project = re.search(r"project\((\w+)\)", top).group(1)
    assert project == "ElastixMonaiLabel" == Path("ElastixMonaiLabel.json").stem
    assert not project.startswith("Slicer")  # catalog rule
    depends = re.search(r"set\(EXTENSION_DEPENDS\s+([^)#]*)\)", top).group(1).split()
    assert depends == entry["build_dependencies"] == ["SlicerElastix"]
    assert "add_subdirectory(ElastixMonaiLabel)" in top
    assert (ROOT / "LICENSE").is_file() and (ROOT / "NOTICE").is_file()


@pytest.mark.parametrize("path", [MODULE_FILE, *sorted(LIB.rglob("*.py")), *sorted((MODULE / "ElastixMonaiLabelSlicer").glob("*.py"))],
                         ids=lambda p: p.relative_to(MODULE).as_posix())
@pytest.mark.parametrize("version", [(3, 11), (3, 12)], ids=["py311", "py312"])
def test_compiles_for_slicer_and_here(path, version):
    source = path.read_text()
    ast.parse(source, filename=str(path), feature_version=version)
    compile(source, str(path), "exec")


def _imported(nodes) -> set[str]:
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add((node.module or "").split(".")[0])
    return names


SLICER_NAMES = {"slicer", "qt", "ctk", "vtk", "SampleData", "Elastix"}


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: p.relative_to(MODULE).as_posix())
def test_lib_imports_nothing_from_slicer(path):
    tree = ast.parse(path.read_text())
    assert not _imported(ast.walk(tree)) & {"monailabel", "ElastixMonaiLabelSlicer"}, path.name
    assert not _imported(ast.walk(tree)) & SLICER_NAMES, path.name


@pytest.mark.parametrize("path", sorted((MODULE / "ElastixMonaiLabelSlicer").glob("*.py")), ids=lambda p: p.name)
def test_the_slicer_layer_imports_slicer_inside_its_functions_only(path):
    # Only ElastixMonaiLabel.py imports this package; importing it never needs Slicer.
    assert not _imported(ast.parse(path.read_text()).body) & SLICER_NAMES, path.name


def test_module_file_is_thin():
    assert len(MODULE_FILE.read_text().splitlines()) < 600


def test_catalog_urls_name_committed_files():
    # The ExtensionsIndex checks that the icon and screenshot URLs answer: they must name files in this repository.
    top = (ROOT / "CMakeLists.txt").read_text()
    prefix = "https://raw.githubusercontent.com/elastix-monailabel/SlicerElastixMonaiLabel/main/"
    for variable in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        urls = re.search(rf'set\({variable} "([^"]+)"\)', top).group(1).split()
        for url in urls:
            assert url.startswith(prefix), url
            assert (ROOT / url[len(prefix):]).is_file(), url
    assert "screenshot-placeholder" not in top


def test_cmake_minimum_is_one_slicer_5_10_builds_with():
    # Slicer 5.10 is built with CMake 3.20.6 (its own and its extension template's minimum: 3.20.6...3.22.6); a higher
    # minimum stops an extension build for 5.10 at configure time. The upper end sets the policies Slicer 5.12 uses.
    top = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r"^cmake_minimum_required\(VERSION ([\d.]+)\.\.\.([\d.]+) FATAL_ERROR\)", top, re.M)
    assert match, "cmake_minimum_required(VERSION min...max FATAL_ERROR) expected"
    assert tuple(map(int, match.group(1).split("."))) <= (3, 20, 6) <= tuple(map(int, match.group(2).split(".")))
    assert top.index("cmake_minimum_required") < top.index("project(")


def test_self_test_loads_slicer_elastix_module():
    # The extension's own CTest must find SlicerElastix's Elastix module (its executables drive the self-test).
    text = (MODULE / "CMakeLists.txt").read_text()
    assert "--additional-module-path ${SlicerElastix_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}" in text
    assert re.search(r"slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py \$\{_elastix_module_args\}\)", text)


def parameter_node_fields() -> set[str]:
    tree = ast.parse(MODULE_FILE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in the module")


def ui_tree():
    return ElementTree.parse(UI_FILE)  # raises on malformed XML


def ui_bound_parameters() -> set[str]:
    bound = set()
    for widget in ui_tree().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound.add(prop.find("string").text)
    return bound


# Parameter-node fields read or written through the parameter node in the module: node.x, parameterNode.x.
PARAMETER_ACCESS = re.compile(r"\b(?:node|parameterNode|self\._parameterNode)\.([a-z]\w*)")


def test_ui_binds_only_existing_parameters_and_code_manages_the_rest():
    fields, bound = parameter_node_fields(), ui_bound_parameters()
    assert bound <= fields, f"the .ui binds parameters that do not exist: {bound - fields}"
    # Lists and ids have no widget connector: the widget keeps them in step itself.
    used = set(PARAMETER_ACCESS.findall(MODULE_FILE.read_text()))
    assert fields - bound <= used, f"parameters neither bound nor used: {fields - bound - used}"


def test_ui_widget_classes_are_real():
    tree = ui_tree()
    classes = {w.get("class") for w in tree.iter("widget")}
    assert classes <= KNOWN_WIDGETS, classes - KNOWN_WIDGETS
    custom = {c.find("class").text for c in tree.iter("customwidget")}
    assert {c for c in classes if not c.startswith("Q")} <= custom


def test_widget_uses_only_widgets_and_fields_that_exist():
    source = MODULE_FILE.read_text()
    names = {w.get("name") for w in ui_tree().iter("widget")}
    used_widgets = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used_widgets <= names, used_widgets - names
    fields = parameter_node_fields()
    used_fields = set(PARAMETER_ACCESS.findall(source)) - {"disconnectGui", "connectGui"}
    assert used_fields <= fields, used_fields - fields


def test_module_strings_are_translatable():
    tree = ast.parse(MODULE_FILE.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Attribute) and target.attr in {"title", "helpText", "acknowledgementText", "toolTip", "text"}:
                value = node.value
                assert isinstance(value, (ast.Call, ast.IfExp)) or not isinstance(value, ast.Constant), ast.unparse(node)


@pytest.mark.parametrize("path", [MODULE_FILE, *sorted(LIB.rglob("*.py")), *sorted((MODULE / "ElastixMonaiLabelSlicer").glob("*.py")),
                                  *sorted((ROOT / "MonaiLabelApp").rglob("*.py"))], ids=lambda p: p.name)
def test_no_undefined_or_unused_names(path):
    # Slicer cannot run here: pyflakes at least catches names the module would only trip over at run time.
    from pyflakes.api import check
    from pyflakes.reporter import Reporter
    import io

    out = io.StringIO()
    assert check(path.read_text(), str(path), Reporter(out, out)) == 0, out.getvalue()
