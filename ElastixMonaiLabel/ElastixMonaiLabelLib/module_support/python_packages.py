"""Which of the module's optional Python packages are missing, without pip and without ``packaging``.

Slicer 5.12 has ``slicer.packaging.pip_ensure`` to check and install requirements; Slicer 5.10
has no ``slicer.packaging``, so there the module checks for itself with this (requirements of
the simple form ``name``, ``name>=1.2`` or ``name==1.2``, as in Resources/requirements.txt)
before it asks the user and calls ``slicer.util.pip_install``.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)\s*(?:(>=|==)\s*([0-9][0-9A-Za-z.]*))?\s*$")


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements file (comments, blank lines and pip options skipped)."""
    lines = [line.split("#", 1)[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:4])


def missing_requirements(requirements: list[str], installed=metadata.version) -> list[str]:
    """The requirements not satisfied by the installed distributions (``installed(name)`` gives a version)."""
    missing = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if not match:
            raise ValueError(f"unsupported requirement {requirement!r} (use name, name>=version or name==version)")
        name, operator, wanted = match.groups()
        try:
            have = installed(name)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
            continue
        if operator == ">=" and _version_key(have) < _version_key(wanted):
            missing.append(requirement)
        elif operator == "==" and _version_key(have) != _version_key(wanted):
            missing.append(requirement)
    return missing
