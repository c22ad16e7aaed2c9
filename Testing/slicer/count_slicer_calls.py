"""Counts which functions of the module's Slicer side the on_slicer_core tests execute on Slicer's libraries.

    .venv-slicer/bin/python Testing/slicer/count_slicer_calls.py [pytest arguments]

Runs ``pytest Testing/slicer/on_slicer_core`` in this process with a profile hook on every thread (sys.setprofile,
threading.setprofile) that records each Python function called whose code lives in ElastixMonaiLabelSlicer/ or
ElastixMonaiLabel.py, then compares them with the functions those files define (read with ast: functions, methods, and
the functions nested in them, such as the Logic's onFinished callbacks), and prints executed/defined per group with the
names never executed, and the run's wall time. Exit status: pytest's.
"""

from __future__ import annotations

import ast
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "ElastixMonaiLabel"
FILES = [MODULE / "ElastixMonaiLabel.py", *sorted((MODULE / "ElastixMonaiLabelSlicer").glob("*.py"))]


def defined() -> dict[tuple[str, int], str]:
    """(file, line of the def) -> group and qualified name, for every function the files define."""
    found = {}
    for path in FILES:
        def visit(node, prefix, group):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.", group if path.name != "ElastixMonaiLabel.py" else child.name)
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    line = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    found[(str(path), line)] = (group, f"{path.name}:{prefix}{child.name}")
                    found[(str(path), child.lineno)] = found[(str(path), line)]
                    visit(child, f"{prefix}{child.name}.", group)
        visit(ast.parse(path.read_text()), "", "ElastixMonaiLabelSlicer" if path.parent.name == "ElastixMonaiLabelSlicer"
              else "module functions")
    return found


def main() -> int:
    import pytest

    files = {str(path) for path in FILES}
    called: set[tuple[str, int]] = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename in files:
            called.add((frame.f_code.co_filename, frame.f_code.co_firstlineno))

    threading.setprofile(profile)
    sys.setprofile(profile)
    start = time.monotonic()
    try:
        code = pytest.main(["-p", "no:cacheprovider", str(ROOT / "Testing" / "slicer" / "on_slicer_core"), *sys.argv[1:]])
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    seconds = time.monotonic() - start
    functions = defined()
    groups: dict[str, tuple[set, set]] = {}
    for key, (group, name) in functions.items():
        done, every = groups.setdefault(group, (set(), set()))
        every.add(name)
        if key in called:
            done.add(name)
    print(f"\nexecuted on Slicer's libraries ({seconds:.0f} s for the whole pytest run):")
    for group, (done, every) in sorted(groups.items()):
        print(f"  {group}: {len(done)} of {len(every)}" + (f"; not run: {', '.join(sorted(every - done))}" if every - done else ""))
    total = sum(len(done) for done, _ in groups.values()), sum(len(every) for _, every in groups.values())
    print(f"  all: {total[0]} of {total[1]}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
