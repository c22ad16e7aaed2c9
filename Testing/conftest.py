"""Shared fixtures: small generated subjects (2-3 mm) made once per test session."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "ElastixMonaiLabel"
# The core is installed editable by scripts/setup-env.sh; this keeps a bare checkout working too.
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")

# Testing/server/in_process needs torch + MONAI: scripts/test.sh runs it in the server's environment (.venv-server);
# Testing/slicer/on_slicer_core needs Slicer's libraries (the slicer-core wheel, package slicer_core; PyPI's "slicer"
# is another project): it runs in .venv-slicer (scripts/setup-slicer-env.sh).
collect_ignore = []
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("monai") is None:
    collect_ignore.append("server/in_process")
if importlib.util.find_spec("slicer_core") is None:
    collect_ignore.append("slicer/on_slicer_core")


@pytest.fixture(scope="session", autouse=True)
def separate_cache(tmp_path_factory):
    """Atlases and other cached builds go to this session's folder, not the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ELASTIXMONAILABEL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


class Subject:
    """A generated subject on disk with its ground truth."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.info = json.loads((folder / "subject.json").read_text())

    def path(self, modality: str) -> Path:
        return self.folder / self.info["modalities"][modality]["file"]

    def truth(self, modality: str):
        import numpy as np

        return np.array(self.info["modalities"][modality]["matrix_lps"])

    @property
    def brain_mask(self) -> Path:
        return self.folder / "brain_mask.nii.gz"

    @property
    def labels(self) -> Path:
        return self.folder / "labels.nii.gz"


@pytest.fixture(scope="session")
def make_subject(tmp_path_factory):
    """Factory: make_subject(seed=..., spacing_mm=..., ...) -> Subject, cached per spec."""
    cache: dict[SubjectSpec, Subject] = {}

    def make(**fields) -> Subject:
        thick = fields.pop("thick_flair", None)
        spec = SubjectSpec(thick_slice_mm={"flair": thick} if thick else None, **fields)
        key = repr(spec)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"subject-{spec.seed}-{spec.spacing_mm:g}mm{'-thick' if thick else ''}")
            generate_subject(spec, folder)
            cache[key] = Subject(folder)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def subject_3mm(make_subject) -> Subject:
    return make_subject(seed=3, spacing_mm=3.0)


def pytest_terminal_summary(terminalreporter, config):
    """The notebooks this run executed and their times (Testing/notebooks/test_notebooks.py, Testing/server/in_process/test_notebooks_server.py)."""
    from notebook_checks import EXECUTED

    executed = config.stash.get(EXECUTED, [])
    if executed:
        terminalreporter.write_sep("-", f"notebooks executed: {len(executed)}, {sum(s for _, s, _ in executed):.0f} s")
        for name, seconds, outcome in executed:
            terminalreporter.write_line(f"{name}: {outcome} in {seconds:.0f} s")
