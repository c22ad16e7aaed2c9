"""Named registration presets: plain elastix parameter files under Resources/Presets.

``Resources/Presets/presets.json`` lists each preset's name, a description and its
stage files (one elastix parameter file per stage, run in order). The same files
are read by itk-elastix and passed to the elastix executable with ``-p``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .parameter_files import ParameterMap, read_parameter_file
from ..runtime.resources import resource_path


@dataclass(frozen=True)
class Preset:
    """A registration preset: one elastix parameter file per stage."""

    name: str
    title: str
    description: str
    stage_files: tuple[Path, ...]
    is_default: bool = False

    def parameter_maps(self) -> list[ParameterMap]:
        """The stages' parameter maps, read fresh from disk (callers may modify them)."""
        return [read_parameter_file(path) for path in self.stage_files]

    @property
    def is_linear(self) -> bool:
        """True when every stage is rigid/similarity/affine (the result is one matrix)."""
        return stages_are_linear(self.parameter_maps())


LINEAR_TRANSFORMS = {"TranslationTransform", "EulerTransform", "SimilarityTransform", "AffineTransform"}


def stages_are_linear(stages: list[ParameterMap]) -> bool:
    return all(stage.get("Transform", ("",))[0] in LINEAR_TRANSFORMS for stage in stages)


def presets_dir() -> Path:
    return resource_path("Presets")


def list_presets() -> list[Preset]:
    """All presets shipped with the project, default first."""
    index_path = presets_dir() / "presets.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    presets = [
        Preset(
            name=entry["name"],
            title=entry["title"],
            description=entry["description"],
            stage_files=tuple(presets_dir() / stage for stage in entry["stages"]),
            is_default=bool(entry.get("default", False)),
        )
        for entry in index["presets"]
    ]
    return sorted(presets, key=lambda p: not p.is_default)


def default_preset() -> Preset:
    """The preset ``presets.json`` marks ``"default": true``: the one place that says which it is."""
    return next(p for p in list_presets() if p.is_default)


def resolve_preset(preset: Preset | str | Path | None) -> Preset:
    """``preset`` itself, a preset by name or parameter file path(s) (:func:`get_preset`), or the default (None)."""
    if isinstance(preset, Preset):
        return preset
    return get_preset(preset) if preset else default_preset()


def get_preset(name: str | Path) -> Preset:
    """A shipped preset by name, or a custom one from elastix parameter file path(s).

    ``name`` may be a preset name, or one path / several comma-separated paths to
    parameter files (run in that order).
    """
    presets = {p.name: p for p in list_presets()}
    key = str(name)
    if key in presets:
        return presets[key]
    paths = [Path(part) for part in key.split(",") if part]
    if paths and all(p.suffix == ".txt" for p in paths):
        for path in paths:
            read_parameter_file(path)  # raises a clear error for a missing or bad file
        return Preset(name=key, title=key, description="custom parameter files", stage_files=tuple(paths))
    raise InputError("preset", f"unknown preset {key!r}; available: {', '.join(presets)} (or a path to an elastix parameter file)")
