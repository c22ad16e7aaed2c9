"""Rules the core's code keeps: no module takes another's private names; the default preset is named in one place."""

import ast
import json
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "ElastixMonaiLabel" / "ElastixMonaiLabelLib"
PRESETS = Path(__file__).resolve().parents[2] / "ElastixMonaiLabel" / "Resources" / "Presets" / "presets.json"


def test_no_module_imports_private_names_of_another():
    private = []
    for path in sorted(LIB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private += [f"{path.relative_to(LIB)}: {alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert private == []


def test_the_default_preset_is_named_only_in_presets_json():
    default = next(p["name"] for p in json.loads(PRESETS.read_text())["presets"] if p.get("default"))
    named = [str(path.relative_to(LIB)) for path in LIB.rglob("*.py") if f'"{default}"' in path.read_text()
             or f"default {default}" in path.read_text()]
    assert named == []
