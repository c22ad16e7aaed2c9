"""The two ways to run elastix: itk-elastix in-process, or the elastix executable.

Both take ITK images and a list of parameter maps (one per stage) and return the
chain of TransformParameters maps, so everything after registration (transform
conversion, resampling, reports) is shared and engine-independent.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, RegistrationError
from ..data.images import write_volume
from .parameter_files import ParameterMap, read_parameter_file, write_parameter_file
from ..runtime.processes import CancelToken, run_process
from .stages import log_tail, without_result_image

LogCallback = Callable[[str], None]

ENGINES = ("itk", "executable")


class ItkElastixEngine:
    """elastix through itk-elastix, in this process (headless, server, notebooks, tests).

    A running stage cannot be interrupted; cancellation takes effect between modalities.
    """

    name = "itk"

    def version(self) -> str:
        from importlib.metadata import version

        return f"itk-elastix {version('itk-elastix')}"

    def register(
        self,
        fixed: Any,
        moving: Any,
        stages: list[ParameterMap],
        *,
        workdir: Path,
        fixed_mask: Any = None,
        moving_mask: Any = None,
        threads: int | None = None,
        log: LogCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> list[ParameterMap]:
        import itk

        parameter_object = itk.ParameterObject.New()
        for stage in without_result_image(stages):
            parameter_object.AddParameterMap({key: tuple(values) for key, values in stage.items()})
        method = itk.ElastixRegistrationMethod.New(fixed, moving)
        method.SetParameterObject(parameter_object)
        if fixed_mask is not None:
            method.SetFixedMask(fixed_mask)
        if moving_mask is not None:
            method.SetMovingMask(moving_mask)
        if threads:
            method.SetNumberOfThreads(int(threads))
        method.SetLogToConsole(False)
        method.SetLogToFile(True)
        method.SetLogFileName("elastix.log")
        method.SetOutputDirectory(str(workdir))
        try:
            method.Update()
        except RuntimeError as error:
            raise RegistrationError(f"elastix failed: {error}\n{log_tail(workdir / 'elastix.log')}") from error
        finally:
            if log and (workdir / "elastix.log").exists():
                for line in (workdir / "elastix.log").read_text(errors="replace").splitlines():
                    log(line)
        result = method.GetTransformParameterObject()
        return [
            {key: tuple(values) for key, values in dict(result.GetParameterMap(i)).items()}
            for i in range(result.GetNumberOfParameterMaps())
        ]

    def displacement_field(self, chain: list[ParameterMap], fixed: Any, *, workdir: Path) -> Any:
        """Displacement field of the whole chain on the fixed grid (vector image)."""
        import itk

        parameter_object = itk.ParameterObject.New()
        for stage in chain:
            parameter_object.AddParameterMap({key: tuple(values) for key, values in stage.items()})
        # The filter, not itk.transformix_deformation_field: that one writes into the current folder.
        transformix = itk.TransformixFilter[type(fixed)].New()
        transformix.SetMovingImage(fixed)
        transformix.SetTransformParameterObject(parameter_object)
        transformix.SetComputeDeformationField(True)
        transformix.SetOutputDirectory(str(workdir))
        transformix.SetLogToConsole(False)
        transformix.Update()
        return transformix.GetOutputDeformationField()


class ElastixExecutableEngine:
    """The elastix/transformix executables in a subprocess that cancel kills.

    SlicerElastix ships them inside Slicer; Debian's ``elastix`` package elsewhere.
    Paths come from the arguments, then $ELASTIX_EXECUTABLE / $TRANSFORMIX_EXECUTABLE,
    then PATH.
    """

    name = "executable"

    def __init__(
        self, elastix: str | Path | None = None, transformix: str | Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.elastix = self._find(elastix, "ELASTIX_EXECUTABLE", "elastix")
        self.transformix = self._find(transformix, "TRANSFORMIX_EXECUTABLE", "transformix")
        # SlicerElastix's executables need its library folder in the environment.
        self.env = env

    @staticmethod
    def _find(given: str | Path | None, variable: str, program: str) -> str:
        candidate = str(given) if given else os.environ.get(variable) or shutil.which(program)
        if not candidate or not Path(candidate).exists():
            raise InputError(
                program,
                f"{program} executable not found (looked at {given or '$' + variable + ' and PATH'}); "
                "install elastix (e.g. 'apt-get install elastix') or use the itk engine",
            )
        return candidate

    def version(self) -> str:
        return executable_version(self.elastix, tuple(sorted((self.env or {}).items())))

    def register(
        self,
        fixed: Any,
        moving: Any,
        stages: list[ParameterMap],
        *,
        workdir: Path,
        fixed_mask: Any = None,
        moving_mask: Any = None,
        threads: int | None = None,
        log: LogCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> list[ParameterMap]:
        # Uncompressed NIfTI: quick to write, read by every elastix version.
        command = [self.elastix, "-f", write_volume(fixed, workdir / "fixed.nii", compress=False)]
        command += ["-m", write_volume(moving, workdir / "moving.nii", compress=False), "-out", workdir]
        for index, stage in enumerate(without_result_image(stages)):
            command += ["-p", write_parameter_file(stage, workdir / f"stage{index}.txt")]
        if fixed_mask is not None:
            command += ["-fMask", write_volume(fixed_mask, workdir / "fixed_mask.nii", compress=False)]
        if moving_mask is not None:
            command += ["-mMask", write_volume(moving_mask, workdir / "moving_mask.nii", compress=False)]
        if threads:
            command += ["-threads", str(int(threads))]
        code = run_process(command, log=log, cancel=cancel, cwd=workdir, env=self.env)
        results = [workdir / f"TransformParameters.{i}.txt" for i in range(len(stages))]
        if code != 0 or not all(path.exists() for path in results):
            raise RegistrationError(f"elastix exited with code {code}:\n{log_tail(workdir / 'elastix.log')}")
        return [read_parameter_file(path) for path in results]

    def displacement_field(self, chain: list[ParameterMap], fixed: Any, *, workdir: Path) -> Any:
        import itk

        out = workdir / "transformix"
        out.mkdir(exist_ok=True)
        previous = "NoInitialTransform"
        for index, stage in enumerate(chain):
            path = out / f"chain{index}.txt"
            write_parameter_file({**stage, "InitialTransformParametersFileName": (previous,)}, path)
            previous = str(path)
        code = run_process([self.transformix, "-def", "all", "-tp", previous, "-out", out], cwd=out, env=self.env)
        fields = sorted(out.glob("deformationField.*"))
        if code != 0 or not fields:
            raise RegistrationError(f"transformix exited with code {code}:\n{log_tail(out / 'transformix.log')}")
        return itk.imread(str(fields[0]))


@functools.lru_cache(maxsize=8)
def executable_version(elastix: str, env: tuple[tuple[str, str], ...] = ()) -> str:
    """What ``elastix --version`` says, run with ``env`` (sorted items; empty: this environment). Asked once per
    executable, not once per registration."""
    output = subprocess.run([elastix, "--version"], capture_output=True, text=True, check=False, env=dict(env) or None).stdout
    return output.strip() or "elastix (unknown version)"


def make_engine(name: str, **options: Any) -> ItkElastixEngine | ElastixExecutableEngine:
    """Engine by name: 'itk' or 'executable'."""
    if name == "itk":
        return ItkElastixEngine()
    if name == "executable":
        return ElastixExecutableEngine(**options)
    raise InputError("engine", f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")

