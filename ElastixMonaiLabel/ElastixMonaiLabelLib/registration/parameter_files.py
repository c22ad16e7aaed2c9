"""elastix parameter files: read and write the plain-text format both engines use.

A parameter map is an ordered ``dict[str, tuple[str, ...]]``, the same shape
itk-elastix uses, so a map read here can be handed to ``itk.ParameterObject`` and
written back for the elastix executable without loss.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..runtime.files import write_text

ParameterMap = dict[str, tuple[str, ...]]

_ENTRY = re.compile(r'\(\s*([A-Za-z_][A-Za-z0-9_]*)((?:\s+(?:"[^"]*"|[^\s()"]+))*)\s*\)')
_TOKEN = re.compile(r'"([^"]*)"|([^\s"]+)')


def _strip_comment(line: str) -> str:
    in_quotes = False
    for index, char in enumerate(line):
        if char == '"':
            in_quotes = not in_quotes
        elif char == "/" and not in_quotes and line[index : index + 2] == "//":
            return line[:index]
    return line


def parse_parameter_text(text: str, source: str = "<text>") -> ParameterMap:
    """Parse the text of an elastix parameter file."""
    parameters: ParameterMap = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        matches = list(_ENTRY.finditer(line))
        if not matches or "".join(m.group(0) for m in matches).replace(" ", "") != line.replace(" ", ""):
            raise InputError(source, f"line {number} is not an elastix parameter entry: {raw.strip()!r}")
        for match in matches:
            values = tuple(quoted or bare for quoted, bare in _TOKEN.findall(match.group(2)))
            parameters[match.group(1)] = values
    return parameters


def read_parameter_file(path: str | Path) -> ParameterMap:
    """Read an elastix parameter (or TransformParameters) file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(path, f"cannot read parameter file ({error.strerror or error})") from error
    parameters = parse_parameter_text(text, str(path))
    if not parameters:
        raise InputError(path, "parameter file has no entries")
    return parameters


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def format_parameter_map(parameters: ParameterMap) -> str:
    """Text of a parameter file; numbers bare, everything else quoted, as elastix writes."""
    lines = []
    for key, values in parameters.items():
        rendered = " ".join(v if _is_number(v) else f'"{v}"' for v in values)
        lines.append(f"({key} {rendered})")
    return "\n".join(lines) + "\n"


def write_parameter_file(parameters: ParameterMap, path: str | Path) -> Path:
    """Write a parameter map as an elastix parameter file (atomically)."""
    write_text(path, format_parameter_map(parameters))
    return Path(path)
