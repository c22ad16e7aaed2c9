"""Where the module's resources live, in Slicer, in a source checkout and in a wheel."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parents[1]  # the package folder (this file is in runtime/)


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


CACHE_ENVIRONMENT_VARIABLE = "ELASTIXMONAILABEL_CACHE"


def cache_dir() -> Path:
    """Where things built once and reused are kept (e.g. the atlases of ``atlas_registration``).

    ``$ELASTIXMONAILABEL_CACHE`` if set, else ``$XDG_CACHE_HOME/elastix-monailabel`` (default
    ``~/.cache/elastix-monailabel``): outside the checkout, shared by every datastore.
    """
    import os

    explicit = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "elastix-monailabel"
