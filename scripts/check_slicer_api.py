"""Check the Slicer rules kept as data in Testing/slicer_rules.py against Slicer's (and SlicerElastix's) source.

    python scripts/check_slicer_api.py SLICER_GIT_DIR [--elastix SLICERELASTIX_GIT_DIR]

Both arguments are git repositories (a bare mirror is enough: files are read with ``git show TAG:PATH``).
For every API entry and each of the tags v5.10.0 and v5.12.3 (the commits in SLICER) it checks that the
named file defines the name; for Qt, VTK and PythonQt names (not Slicer's code) it looks for the name in
Slicer's own Python code at that tag, as evidence that Slicer's Python exposes it. Names listed in
ONLY_IN_5_12 must be missing at v5.10.0. It also checks that guiConnectors.py is the file the connector
table was written from. Exit status 1 when anything does not hold; every problem is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[1] / "Testing" / "slicer_rules.py"
GUI_CONNECTORS_BLOB = "c0b71ebfa21526a56ef6dd9bcbb0d6b7a7e229e0"
TAGS = ("v5.10.0", "v5.12.3")


def load_rules():
    spec = importlib.util.spec_from_file_location("slicer_rules", RULES)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def git(repository: str, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", repository, *arguments], capture_output=True, text=True)


def show(repository: str, revision: str, path: str) -> str | None:
    result = git(repository, "show", f"{revision}:{path}")
    return result.stdout if result.returncode == 0 else None


def name_pattern(name: str) -> str:
    last = name.split(".")[-1].replace("()", "")
    return rf"\b{re.escape(last)}\b"


def check(slicer: str, elastix: str | None) -> list[str]:
    rules = load_rules()
    problems = []
    for tag in TAGS:
        if git(slicer, "rev-parse", f"{tag}^{{commit}}").stdout.strip() != rules.SLICER[tag]:
            problems.append(f"{tag} is not commit {rules.SLICER[tag]} in {slicer}")
        blob = git(slicer, "rev-parse", f"{tag}:Base/Python/slicer/parameterNodeWrapper/guiConnectors.py").stdout.strip()
        if blob != GUI_CONNECTORS_BLOB:
            problems.append(f"{tag}: guiConnectors.py is blob {blob}, the table was written from {GUI_CONNECTORS_BLOB}")
    late = {f"{owner}.{name}" for name, owner in rules.ONLY_IN_5_12.items()}
    for name, source in sorted(rules.API.items()):
        if source in ("Python", "numpy"):
            continue
        if source.startswith("SlicerElastix:"):
            if elastix is None:
                problems.append(f"{name}: not checked (no --elastix repository)")
                continue
            text = show(elastix, rules.SLICER_ELASTIX["commit"], source.split(":", 1)[1])
            if text is None or not re.search(name_pattern(name), text):
                problems.append(f"{name}: not found in SlicerElastix {source}")
            continue
        for tag in TAGS:
            if source.split(":")[0] in ("Qt", "VTK", "PythonQt"):
                evidence = source.split(":", 1)[1] if ":" in source else name  # Qt:Other: a value of the same enum
                found = git(slicer, "grep", "-q", "-E", name_pattern(evidence), tag, "--", "*.py").returncode == 0
                if not found:
                    problems.append(f"{name} ({source}): not used anywhere in Slicer's Python code at {tag}; check by hand")
                continue
            path, _, pattern = source.partition("::")
            text = show(slicer, tag, path)
            present = text is not None and re.search(pattern or name_pattern(name), text) is not None
            if tag == "v5.10.0" and name in late:
                if present:
                    problems.append(f"{name}: listed as 5.12-only but present in {path} at {tag}")
            elif not present:
                problems.append(f"{name}: not found in {path} at {tag}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slicer", help="git repository of Slicer (github.com/Slicer/Slicer) with tags v5.10.0 and v5.12.3")
    parser.add_argument("--elastix", help="git repository of SlicerElastix (github.com/lassoan/SlicerElastix)")
    arguments = parser.parse_args()
    problems = check(arguments.slicer, arguments.elastix)
    rules = load_rules()
    for problem in problems:
        print(problem)
    print(f"{len(rules.API)} API entries and the GUI connector table checked at {', '.join(TAGS)}: "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
