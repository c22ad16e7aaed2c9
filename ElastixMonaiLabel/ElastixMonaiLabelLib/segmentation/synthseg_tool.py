"""SynthSeg itself as an annotator: finding it, running it on one image, keeping what it writes.

SynthSeg's weights are not on PyPI, so the project cannot install it; a user who has it
(FreeSurfer >= 7.3's ``mri_synthseg``, or a SynthSeg checkout with its weights and a
Python that runs it) can let ``prepare`` label each case with it. Both speak the same
command line (``--i IMAGE --o LABELS --vol CSV --qc CSV [--robust] [--threads N] [--cpu]``).
The label map it writes (FreeSurfer ids on its own 1 mm grid) is then imported like any
SynthSeg output; the volumes and QC tables are kept beside it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ElastixMonaiLabelError, InputError
from ..runtime.files import ensure_output_dir
from ..runtime.processes import CancelToken, run_process

CHECKOUT_ENV = "ELASTIXMONAILABEL_SYNTHSEG"
PREDICT_SCRIPT = Path("scripts") / "commands" / "SynthSeg_predict.py"
NOT_INSTALLED = (
    "SynthSeg is not installed: mri_synthseg (FreeSurfer 7.3 or later) is not on PATH and no SynthSeg checkout was "
    f"given (--synthseg-checkout DIR or the {CHECKOUT_ENV} environment variable, with its weights in DIR/models). "
    "Labels that SynthSeg already wrote can be imported instead: --labels '*_synthseg.nii.gz'."
)


class SynthSegError(ElastixMonaiLabelError, RuntimeError):
    """SynthSeg ran but failed; the message names the image and carries the end of its output."""


@dataclass(frozen=True)
class SynthSegCommand:
    """How to start SynthSeg: the program and the arguments before SynthSeg's own."""

    program: tuple[str, ...]

    def describe(self) -> str:
        return " ".join(self.program)


@dataclass(frozen=True)
class SynthSegOutputs:
    labels: Path
    volumes: Path
    qc: Path


def find_synthseg(checkout: str | Path | None = None, python: str | Path | None = None) -> SynthSegCommand:
    """The SynthSeg to run: the checkout given (or named by $ELASTIXMONAILABEL_SYNTHSEG), else mri_synthseg on PATH."""
    checkout = checkout or os.environ.get(CHECKOUT_ENV) or None
    if checkout:
        checkout = Path(checkout).expanduser()
        script = checkout / PREDICT_SCRIPT
        if not script.is_file():
            raise InputError(checkout, f"not a SynthSeg checkout: {PREDICT_SCRIPT} is missing")
        if not any((checkout / "models").glob("*.h5")):
            raise InputError(checkout, "SynthSeg's weights are missing: put its .h5 model files in models/ (see SynthSeg's README)")
        return SynthSegCommand((str(python or sys.executable), str(script)))
    program = shutil.which("mri_synthseg")
    if program is None:
        raise InputError("SynthSeg", NOT_INSTALLED)
    return SynthSegCommand((program,))


def synthseg_outputs(out_dir: str | Path, name: str) -> SynthSegOutputs:
    out_dir = Path(out_dir)
    return SynthSegOutputs(out_dir / f"{name}_synthseg.nii.gz", out_dir / f"{name}_volumes.csv", out_dir / f"{name}_qc.csv")


def run_synthseg(
    command: SynthSegCommand,
    image: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    robust: bool = False,
    threads: int = 1,
    cpu: bool = False,
    log: Callable[[str], None] | None = None,
    cancel: CancelToken | None = None,
) -> SynthSegOutputs:
    """Segment ``image`` with SynthSeg into ``out_dir/<name>_synthseg.nii.gz`` (+ volumes and QC CSVs).

    Outputs already there from an earlier run are reused (SynthSeg is the slow step of a
    prepare). SynthSeg writes into a scratch folder; only complete outputs are renamed into
    place, the label map last, so that its presence means the run finished.
    """
    final = synthseg_outputs(ensure_output_dir(out_dir), name)
    if final.labels.exists():
        return final
    scratch = Path(out_dir) / f".{name}.synthseg-partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    partial = synthseg_outputs(scratch, name)
    arguments = ["--i", str(Path(image).resolve()), "--o", str(partial.labels), "--vol", str(partial.volumes),
                 "--qc", str(partial.qc), "--threads", str(max(1, threads))]
    if robust:
        arguments.append("--robust")
    if cpu:
        arguments.append("--cpu")
    tail: list[str] = []

    def keep(line: str) -> None:
        tail[:] = [*tail[-19:], line]
        if log:
            log(line)

    try:
        try:
            code = run_process([*command.program, *arguments], log=keep, cancel=cancel)
        except OSError as error:
            raise SynthSegError(f"{image}: cannot start SynthSeg ({command.describe()}): {error}") from error
        if code != 0:
            raise SynthSegError(f"{image}: SynthSeg failed (exit code {code}):\n" + "\n".join(tail))
        if not partial.labels.exists():
            raise SynthSegError(f"{image}: SynthSeg finished but wrote no label map:\n" + "\n".join(tail))
        for produced, target in ((partial.volumes, final.volumes), (partial.qc, final.qc), (partial.labels, final.labels)):
            if produced.exists():
                os.replace(produced, target)
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
