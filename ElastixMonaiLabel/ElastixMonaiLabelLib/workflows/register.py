"""The ``register`` command: files in; co-registered volumes, transforms and reports out.

For each moving volume NAME (its file name without extension) the output folder gets
``NAME_registered.nii.gz`` (on the reference grid), ``NAME_to_REF.tfm`` (linear presets) or
``NAME_to_REF.h5`` (a displacement field) and ``NAME_registration.json`` (the report), each
written atomically. Every input is read and checked once, before any registration starts
(:func:`read_inputs`), and the results stay in memory for the caller (:func:`register_inputs`):
``segment`` stacks the registered volumes without reading them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.images import read_mask, read_volume, write_volume
from ..errors import InputError
from ..registration.engines import LogCallback, make_engine
from ..registration.itk_images import ModalityResult, register_modality
from ..registration.presets import Preset, resolve_preset
from ..registration.transforms import write_itk_transform, write_linear_transform
from ..runtime.files import ensure_output_dir, write_text
from ..runtime.processes import CancelToken
from ..runtime.progress import ProgressCallback, sub_progress

# The report's fields a workflow's summary keeps per modality (segment's qc.json, prepare's case records).
SUMMARY_KEYS = ("metric_before", "metric_after", "metric_improved", "time_total_s")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".mgz", ".hdr", ".img")


def modality_name(path: str | Path) -> str:
    """A short name from a file name: 'sub-01_T2w.nii.gz' -> 'sub-01_T2w'."""
    name = Path(path).name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def transform_file_name(name: str, reference_name: str, linear: bool) -> str:
    return f"{name}_to_{reference_name}.{'tfm' if linear else 'h5'}"


def report_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a registration report a workflow's summary keeps (:data:`SUMMARY_KEYS`)."""
    return {key: report[key] for key in SUMMARY_KEYS}


def save_result(result: ModalityResult, out_dir: str | Path, reference_name: str) -> dict[str, Path]:
    """Write one modality's volume, transform and report (each atomically); return their paths."""
    out_dir = ensure_output_dir(out_dir)
    paths = {
        "volume": out_dir / f"{result.name}_registered.nii.gz",
        "transform": out_dir / transform_file_name(result.name, reference_name, result.is_linear),
        "report": out_dir / f"{result.name}_registration.json",
    }
    write_volume(result.registered, paths["volume"])
    if result.is_linear:
        write_linear_transform(result.matrix, paths["transform"])
    else:
        write_itk_transform(result.transform, paths["transform"])
    report = {**result.report, "files": {key: path.name for key, path in paths.items()}}
    write_text(paths["report"], json.dumps(report, indent=2) + "\n")
    return paths


@dataclass
class MovingInput:
    """One moving volume, read and checked: its name (from the file name), file, image and optional mask."""

    name: str
    path: Path
    image: Any
    mask: Any = None


@dataclass
class RegistrationInputs:
    """The reference (and its optional mask) and the moving volumes, each read once."""

    reference_path: Path
    reference: Any
    reference_mask: Any
    moving: list[MovingInput]

    @property
    def reference_name(self) -> str:
        return modality_name(self.reference_path)


@dataclass
class Registered:
    """One moving volume registered: the result in memory and the files written."""

    result: ModalityResult
    files: dict[str, Path]


def read_inputs(
    reference_path: str | Path,
    moving_paths: Sequence[str | Path],
    *,
    reference_mask_path: str | Path | None = None,
    moving_mask_paths: Sequence[str | Path | None] | None = None,
) -> RegistrationInputs:
    """Read and check every input (InputError naming the file otherwise); nothing is written."""
    reference = read_volume(reference_path)
    reference_mask = read_mask(reference_mask_path, reference, reference_path) if reference_mask_path else None
    moving_mask_paths = list(moving_mask_paths or [None] * len(moving_paths))
    if len(moving_mask_paths) != len(moving_paths):
        raise InputError("moving masks", f"{len(moving_mask_paths)} masks for {len(moving_paths)} moving volumes")
    names = [modality_name(p) for p in moving_paths]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise InputError(moving_paths[names.index(duplicates.pop())], "two moving volumes have the same file name")
    moving = []
    for name, path, mask_path in zip(names, moving_paths, moving_mask_paths):
        image = read_volume(path)
        moving.append(MovingInput(name, Path(path), image, read_mask(mask_path, image, path) if mask_path else None))
    return RegistrationInputs(Path(reference_path), reference, reference_mask, moving)


def register_inputs(
    inputs: RegistrationInputs,
    out_dir: str | Path,
    *,
    preset: Preset | str | None = None,
    engine: str = "itk",
    threads: int | None = None,
    log: LogCallback | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> list[Registered]:
    """Register each moving volume onto the reference and write its files into ``out_dir``; the results stay in
    memory. ``progress`` sees each modality as an equal part of the whole, with the message "NAME -> REF"."""
    preset = resolve_preset(preset)
    out_dir = ensure_output_dir(out_dir)
    registered = []
    count = len(inputs.moving)
    for index, moving in enumerate(inputs.moving):
        step = sub_progress(progress, index / count, (index + 1) / count, f"{moving.name} -> {inputs.reference_name}")
        step(0.0, "")
        result = register_modality(
            inputs.reference, moving.image, name=moving.name, preset=preset, engine=engine,
            reference_mask=inputs.reference_mask, moving_mask=moving.mask, threads=threads, log=log,
            progress=step if progress else None, cancel=cancel, engine_options=engine_options,
        )
        result.report["reference_file"] = str(inputs.reference_path.resolve())
        result.report["moving_file"] = str(moving.path.resolve())
        registered.append(Registered(result, save_result(result, out_dir, inputs.reference_name)))
    return registered


def register_files(
    reference_path: str | Path,
    moving_paths: list[str | Path],
    out_dir: str | Path,
    *,
    preset: str | None = None,
    engine: str = "itk",
    reference_mask_path: str | Path | None = None,
    moving_mask_paths: list[str | Path | None] | None = None,
    threads: int | None = None,
    log: LogCallback | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Path]]:
    """Register files onto a reference file and write the outputs to ``out_dir``; return each modality's paths.

    Every input, the preset, the engine and the output folder are checked before
    any registration starts, so bad input writes nothing.
    """
    chosen = resolve_preset(preset)
    make_engine(engine, **(engine_options or {}))  # fails now if the executable is missing
    inputs = read_inputs(reference_path, moving_paths, reference_mask_path=reference_mask_path,
                         moving_mask_paths=moving_mask_paths)
    registered = register_inputs(inputs, out_dir, preset=chosen, engine=engine, threads=threads, log=log,
                                 progress=progress, cancel=cancel, engine_options=engine_options)
    return [item.files for item in registered]
