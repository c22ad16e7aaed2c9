"""Slicer's application around the module: SlicerElastix's executables, waiting for a job outside the GUI, installing
itk-elastix with the user's agreement, and questions with an explicit answer in testing mode."""

from __future__ import annotations

from typing import Any


def confirm(text: str, title: str, testing_answer: bool) -> bool:
    """slicer.util.confirmYesNoDisplay, except in testing mode (``--testing``, Slicer's CI), where the answer is
    ``testing_answer``: there Slicer's own returns ``True == qt.QMessageBox.Yes`` (False), answering "no" to
    every question whatever the test means."""
    import logging

    import slicer

    if slicer.app.testingEnabled():
        logging.info(f"Testing mode: answered {'yes' if testing_answer else 'no'} to: {text}")
        return testing_answer
    return slicer.util.confirmYesNoDisplay(text, windowTitle=title)


def slicer_elastix_executables() -> dict[str, Any] | None:
    """SlicerElastix's elastix, transformix and their environment; None when the extension is missing or its
    ElastixLogic finds no executables (getElastixBinDir raises ValueError('Elastix not found'))."""
    import logging
    import os

    try:
        import Elastix

        logic = Elastix.ElastixLogic()
        folder = logic.getElastixBinDir()
        return {"elastix": os.path.join(folder, logic.elastixFilename),
                "transformix": os.path.join(folder, logic.transformixFilename), "env": logic.getElastixEnv()}
    except (ImportError, ValueError) as error:
        logging.info(f"ElastixMonaiLabel: SlicerElastix's executables are not available ({error})")
        return None


def wait_for(job: Any, timeout: float = 1800.0) -> Any:
    """Block until ``job`` ends (scripts, self-test), processing Qt events meanwhile. Each wait is Qt's own
    (WaitForMoreEvents, woken at least every 100 ms by a timer), not a sleep; the GUI itself polls from a QTimer."""
    import logging
    import time

    import qt
    import slicer

    timer, deadline = qt.QTimer(), time.monotonic() + timeout
    timer.start(100)
    try:
        while not job.finished:
            for event in job.poll():
                if event.message:
                    logging.info(event.message)
            if time.monotonic() > deadline:
                job.cancel()
                raise TimeoutError(f"still running after {timeout:g} s; cancelled")
            slicer.app.processEvents(qt.QEventLoop.WaitForMoreEvents)
    finally:
        timer.stop()
    return job


def ensure_itk_elastix(requirements_path: str) -> None:
    """itk-elastix (engine itk) in Slicer's Python, installed only after the user agrees; never in --testing mode.
    Slicer 5.12's slicer.packaging.pip_ensure asks and installs with progress; 5.10 has no slicer.packaging, so there
    the user is asked here and slicer.util.pip_install installs."""
    import slicer
    from slicer.i18n import tr as _

    from ElastixMonaiLabelLib.module_support.python_packages import missing_requirements, read_requirements

    missing = missing_requirements(read_requirements(requirements_path))
    if not missing:
        return
    if slicer.app.testingEnabled():
        raise RuntimeError(_("The itk engine needs itk-elastix, which is not installed (nothing is installed in "
                             "testing mode); use the executable engine (SlicerElastix)."))
    try:
        import slicer.packaging
    except ImportError:
        if not slicer.util.confirmOkCancelDisplay(_("The itk engine needs these Python packages:\n{packages}\n\nInstall "
                                                    "them into Slicer's Python now?").format(packages="\n".join(missing))):
            raise RuntimeError(_("Installing itk-elastix was declined; choose the executable engine (SlicerElastix)."))
        slicer.util.pip_install(" ".join(missing))
    else:
        slicer.packaging.pip_ensure(slicer.packaging.load_requirements(requirements_path), requester="ElastixMonaiLabel")
