"""Where the module's resources live, in Slicer, in a source checkout and in a wheel."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The ``Resources`` folder of the ElastixMonaiLabel module.

    In a source checkout (and an editable install) and inside Slicer it sits beside
    this package; a wheel carries a copy inside the package.
    """
    for candidate in (_HERE.parent / "Resources", _HERE / "Resources"):
        if (candidate / "Presets").is_dir():
            return candidate
    raise FileNotFoundError(f"ElastixMonaiLabel resources not found next to {_HERE}")


def resource_path(*parts: str) -> Path:
    """Path of one resource, e.g. ``resource_path("Presets", "presets.json")``."""
    return resources_dir().joinpath(*parts)
