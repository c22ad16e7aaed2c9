"""Co-registration of voxel arrays for the Slicer module, with either engine, off the GUI thread.

Slicer's Python has numpy and scipy but not itk, so the module cannot call the core's
``register_modality`` in its own process. Two ways remain, both started from a worker thread
(:func:`registration_work` is the function a ``jobs.ThreadJob`` runs):

- ``executable``: the elastix/transformix executables (SlicerElastix's, found by the module)
  run on NIfTI files written here with numpy. The steps are those of
  :func:`.itk_images.register_modality`, with its parts (presets, resolution matching rules,
  :mod:`.stages`: role swap for a coarser moving image, sampler for masks, progress from
  elastix's log; transform chain -> matrix; :mod:`.similarity` and :mod:`.report`); images are
  smoothed and resampled with scipy instead of itk. Nothing to install.
- ``itk``: the core's own command line (``python -m ElastixMonaiLabelLib --events register``)
  in a child process of Slicer's Python (PythonSlicer), which needs itk-elastix installed there.

Both return one :class:`RegistrationOutcome` per moving volume: the registered volume on the
reference grid, the transform (4x4 LPS matrix, or a displacement field Slicer reads from a file)
and the report, all in memory: the work folder is removed before :func:`registration_work`
returns, whether it succeeded, failed or was cancelled (so a job the GUI dropped, on scene close,
leaves nothing behind).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import grid_mismatch
from ..data.modalities import check_modality_names
from ..data.voxels import VoxelVolume, resample, smoothed
from ..errors import CancelledError, InputError, RegistrationError
from ..runtime.jobs import JobEvent, registration_job
from ..runtime.processes import CancelToken, run_process
from ..runtime.progress import JobReport, ProgressCallback, sub_progress
from .engines import executable_version
from .parameter_files import read_parameter_file, write_parameter_file
from .presets import Preset, resolve_preset
from .report import registration_report
from .resolution import smoothing_sigmas
from .similarity import SIMILARITY_STRIDE, before_after
from .stages import elastix_stages, final_interpolation, log_handler, log_tail, swap_roles, without_result_image
from .transforms import chain_matrix, read_linear_transform

SPLINE_ORDERS = {"nearest": 0, "linear": 1, "bspline": 3}


@dataclass
class DisplacementField:
    """A displacement-field transform as the files elastix's tools wrote (a MetaImage header and its data file, or
    one .h5), held in memory so that no work folder outlives the registration. :meth:`write` puts them back on
    disk for a transform reader (Slicer's), in a folder the caller removes."""

    name: str
    files: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> DisplacementField:
        path = Path(path)
        names = [path.name]
        if path.suffix == ".mhd":
            names.append(metaimage_header(path)["ElementDataFile"])
        return cls(path.name, {name: (path.parent / name).read_bytes() for name in names})

    def write(self, folder: str | Path) -> Path:
        """The files in ``folder``; returns the path of the one to read."""
        for name, data in self.files.items():
            (Path(folder) / name).write_bytes(data)
        return Path(folder) / self.name


@dataclass
class RegistrationOutcome:
    """One moving volume, registered: ``matrix_lps`` for linear presets, else ``field`` (ITK displacement field)."""

    modality: str
    registered: VoxelVolume
    report: dict[str, Any]
    matrix_lps: np.ndarray | None = None
    field: DisplacementField | None = None


@dataclass
class RegistrationRequest:
    """What the module hands to the worker thread: volumes as arrays (world coordinates), names, settings."""

    reference: VoxelVolume
    moving: Sequence[VoxelVolume]
    names: Sequence[str]  # reference first, then one per moving volume
    temporary: Path  # the work folder is made in it and removed before registration_work returns
    preset: str | None = None  # None: the default preset (registration.presets.default_preset)
    engine: str = "executable"  # or "itk"
    mask: VoxelVolume | None = None
    elastix: str | None = None
    transformix: str | None = None
    env: dict[str, str] | None = None
    python: str | None = None  # engine "itk": the Python that runs the core's command line


ENGINE_CHOICES = ("auto", "executable", "itk")


def choose_engine(requested: str, executables_found: bool) -> str:
    """The engine to run: ``auto`` takes SlicerElastix's executables when they were found, else itk-elastix."""
    if requested not in ENGINE_CHOICES:
        raise InputError("engine", f"unknown engine {requested!r}; choose one of {', '.join(ENGINE_CHOICES)}")
    if requested == "executable" and not executables_found:
        raise InputError("engine", "the 'executable' engine needs SlicerElastix's elastix, which was not found: "
                                   "install the SlicerElastix extension (or set its elastix folder) or choose 'itk'")
    if requested == "auto":
        return "executable" if executables_found else "itk"
    return requested


def check_request(request: RegistrationRequest) -> list[str]:
    """Canonical channel names; raises InputError before any file is written."""
    if len(request.names) != len(request.moving) + 1:
        raise InputError("modalities", f"{len(request.names)} names for {len(request.moving) + 1} volumes")
    names = check_modality_names(request.names)
    if request.mask is not None:
        problem = grid_mismatch(request.mask, request.reference)
        if problem:
            raise InputError("brain mask", f"is not on the reference grid ({problem})")
        if not np.any(request.mask.array):
            raise InputError("brain mask", "is empty (no non-zero voxel)")
    if request.engine == "executable" and not (request.elastix and request.transformix):
        raise InputError("engine", "the executable engine needs the elastix and transformix executables")
    if request.engine == "itk" and not request.python:
        raise InputError("engine", "the itk engine needs a Python with itk-elastix to run the core's command line")
    resolve_preset(request.preset)  # an unknown preset fails here
    return names


def registration_work(request: RegistrationRequest, report: JobReport, cancel: CancelToken) -> list[RegistrationOutcome]:
    """Register every moving volume (the body of the module's background job). The files live in a folder under
    ``request.temporary`` that is gone when this returns, however it ends: the results are in memory."""
    names = check_request(request)
    request.temporary.mkdir(parents=True, exist_ok=True)
    # ignore_cleanup_errors: a file a killed process still held (Windows) must not turn a result into an error.
    with tempfile.TemporaryDirectory(prefix="ElastixMonaiLabel-registration-", dir=request.temporary,
                                     ignore_cleanup_errors=True) as folder:
        if request.engine == "itk":
            return _run_core_command_line(request, names, Path(folder), report, cancel)
        return _register_each(request, names, Path(folder), report, cancel)


def _register_each(request: RegistrationRequest, names: list[str], workdir: Path, report: JobReport,
                   cancel: CancelToken) -> list[RegistrationOutcome]:
    """Engine executable: each moving volume in its own folder under ``workdir``."""
    preset = resolve_preset(request.preset)
    outcomes = []
    for index, (moving, name) in enumerate(zip(request.moving, names[1:])):
        cancel.raise_if_cancelled()
        progress = sub_progress(report, index / len(request.moving), (index + 1) / len(request.moving),
                                f"{name} -> {names[0]}")
        progress(0.0, "")
        folder = workdir / name
        folder.mkdir(exist_ok=True)
        outcomes.append(register_with_executables(
            request.reference, moving, name=name, preset=preset, elastix=request.elastix, transformix=request.transformix,
            env=request.env, workdir=folder, mask=request.mask, log=lambda line: report(None, line, "log"),
            progress=progress, cancel=cancel,
        ))
    report(1.0, "done")
    return outcomes


def _run_elastix(reference: VoxelVolume, moving: VoxelVolume, stages: list, *, name: str, elastix: str, workdir: Path,
                 env: dict[str, str] | None, mask: VoxelVolume | None, on_line: Callable[[str], None],
                 cancel: CancelToken | None) -> tuple[list, bool]:
    """The elastix executable on the two volumes at their common resolution (roles swapped for a coarser moving
    image, as :func:`.stages.swap_roles` says) -> its transform chain and whether the roles were swapped."""
    fixed_input = smoothed(reference, smoothing_sigmas(reference, moving))
    moving_input = smoothed(moving, smoothing_sigmas(moving, reference))
    swapped = swap_roles(stages, reference, moving, masked=mask is not None)
    if swapped:
        fixed_input, moving_input = moving_input, fixed_input
    command = [elastix, "-f", fixed_input.write(workdir / "fixed.nii"), "-m", moving_input.write(workdir / "moving.nii"),
               "-out", workdir]
    for index, stage in enumerate(elastix_stages(without_result_image(stages), fixed_input, moving_input, mask is not None)):
        command += ["-p", write_parameter_file(stage, workdir / f"stage{index}.txt")]
    if mask is not None:
        command += ["-fMask", mask.write(workdir / "mask.nii", dtype=np.uint8)]
    code = run_process([str(c) for c in command], log=on_line, cancel=cancel, cwd=workdir, env=env)
    results = [workdir / f"TransformParameters.{i}.txt" for i in range(len(stages))]
    if code != 0 or not all(path.exists() for path in results):
        raise RegistrationError(f"{name}: elastix exited with code {code}:\n{log_tail(workdir / 'elastix.log')}")
    return [read_parameter_file(path) for path in results], swapped


def register_with_executables(
    reference: VoxelVolume, moving: VoxelVolume, *, name: str, preset: Preset, elastix: str, transformix: str,
    workdir: Path, env: dict[str, str] | None = None, mask: VoxelVolume | None = None,
    log: Callable[[str], None] | None = None, progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> RegistrationOutcome:
    """One moving volume onto the reference with the elastix executables (the steps of
    :func:`.itk_images.register_modality`, on voxel arrays with scipy instead of itk)."""
    stages = preset.parameter_maps()
    started = time.perf_counter()
    message = f"registering {name}"
    chain, swapped = _run_elastix(reference, moving, stages, name=name, elastix=elastix, workdir=workdir, env=env,
                                  mask=mask, on_line=log_handler(stages, log, progress, message), cancel=cancel)
    elastix_seconds = time.perf_counter() - started
    matrix = chain_matrix(chain)
    field = None
    if matrix is not None:
        matrix = np.linalg.inv(matrix) if swapped else matrix
        order = SPLINE_ORDERS[final_interpolation(stages)]
        registered = VoxelVolume(resample(moving, reference, matrix, order=order), reference.ijk_to_ras)
    else:
        registered, field = _transformix(chain, moving, reference, transformix, env, workdir, cancel)
    version = executable_version(elastix, tuple(sorted((env or {}).items())))
    report = registration_report(
        name, preset.name, chain, engine="executable", engine_version=version, threads=None, resolution_matched=True,
        roles_swapped=swapped, started=started, elastix_seconds=elastix_seconds,
        similarity=nmi_before_after(reference, moving, registered, mask), matrix=matrix, reference=reference,
    )
    if progress:
        progress(1.0, message)
    return RegistrationOutcome(name, registered, report, matrix, field)


def _transformix(chain, moving: VoxelVolume, reference: VoxelVolume, transformix: str, env, workdir: Path,
                 cancel: CancelToken | None) -> tuple[VoxelVolume, DisplacementField]:
    """Non-linear chains: transformix resamples the moving volume and writes the displacement field."""
    out = workdir / "transformix"
    out.mkdir(exist_ok=True)
    previous = "NoInitialTransform"
    for index, stage in enumerate(chain):
        # The field as MetaImage: the format SlicerElastix loads its displacement fields from.
        path = write_parameter_file({**stage, "InitialTransformParametersFileName": (previous,),
                                     "ResultImageFormat": ("mhd",), "ResultImagePixelType": ("float",)},
                                    out / f"chain{index}.txt")
        previous = str(path)
    moving_path = moving.write(out / "moving.nii")
    code = run_process([transformix, "-in", str(moving_path), "-def", "all", "-tp", previous, "-out", str(out)],
                       cancel=cancel, cwd=out, env=env)
    fields, results = sorted(out.glob("deformationField.mhd")), sorted(out.glob("result.mhd"))
    if code != 0 or not fields or not results:
        raise RegistrationError(f"transformix exited with code {code}:\n{log_tail(out / 'transformix.log')}")
    return VoxelVolume(read_metaimage(results[0]), reference.ijk_to_ras), DisplacementField.read(fields[0])


def metaimage_header(path: Path) -> dict[str, str]:
    """The fields of a MetaImage header (.mhd)."""
    fields = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    return fields


def read_metaimage(path: Path) -> np.ndarray:
    """Voxels (k, j, i) of the scalar MetaImage transformix writes (header .mhd + raw data file)."""
    fields = metaimage_header(path)
    kinds = {"MET_FLOAT": "f4", "MET_DOUBLE": "f8", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_UCHAR": "u1",
             "MET_INT": "i4"}
    if fields.get("ElementType") not in kinds or fields.get("CompressedData", "False") == "True":
        raise RegistrationError(f"{path}: unexpected MetaImage ({fields.get('ElementType')}, compressed "
                                f"{fields.get('CompressedData')})")
    order = ">" if fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False")) == "True" else "<"
    size = [int(v) for v in fields["DimSize"].split()]
    data = np.fromfile(Path(path).parent / fields["ElementDataFile"], dtype=order + kinds[fields["ElementType"]])
    return data.reshape(size[::-1]).astype(np.float32)


def nmi_before_after(reference: VoxelVolume, moving: VoxelVolume, registered: VoxelVolume,
                     mask: VoxelVolume | None) -> tuple[float, float, str]:
    """NMI before (header alignment) and after, and the region, on every :data:`.similarity.SIMILARITY_STRIDE`-th
    voxel (as :func:`.itk_images.similarity_before_after`)."""
    step = SIMILARITY_STRIDE
    coarse = reference.strided(step)
    mask_array = mask.array[::step, ::step, ::step] if mask is not None else None
    return before_after(coarse.array, resample(moving, coarse), registered.array[::step, ::step, ::step], mask_array)


def _run_core_command_line(request: RegistrationRequest, names: list[str], workdir: Path, report: JobReport,
                           cancel: CancelToken) -> list[RegistrationOutcome]:
    """Engine itk: the core's ``register`` command in a child process (files under ``workdir``), its events passed on."""
    inputs = workdir / "inputs"
    inputs.mkdir(exist_ok=True)
    reference_path = request.reference.write(inputs / f"{names[0]}.nii")
    moving_paths = [volume.write(inputs / f"{name}.nii") for volume, name in zip(request.moving, names[1:])]
    mask_path = request.mask.write(inputs / "mask.nii", dtype=np.uint8) if request.mask is not None else None
    job = registration_job(request.python, reference_path, moving_paths, workdir / "out", preset=request.preset,
                           engine="itk", reference_mask=mask_path)
    while not job.finished:
        if cancel.cancelled:
            job.cancel()
            raise CancelledError("cancelled by the user: registration stopped")
        for event in job.poll():
            _forward(event, report)
        time.sleep(0.1)
    for event in job.poll():
        _forward(event, report)
    # Exit code 3 means "similarity went down": the results exist and carry the flag; show them.
    if job.exit_code not in (0, 3) or len(job.result) != len(moving_paths):
        raise RegistrationError(job.error or f"the registration command ended without results (exit code {job.exit_code})")
    outcomes = []
    for result in job.result:
        files = {key: Path(value) for key, value in result["files"].items()}
        registered = VoxelVolume.read(files["volume"])
        report_data = result.get("report") or json.loads(files["report"].read_text())
        linear = files["transform"].suffix == ".tfm"
        outcomes.append(RegistrationOutcome(
            result["modality"], registered, report_data,
            matrix_lps=read_linear_transform(files["transform"]) if linear else None,
            field=None if linear else DisplacementField.read(files["transform"]),
        ))
    return outcomes


def _forward(event: JobEvent, report: JobReport) -> None:
    if event.kind == "progress":
        report(event.fraction, event.message)
    elif event.kind == "log":
        report(None, event.message, "log")
