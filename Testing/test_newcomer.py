"""A newcomer's first steps, as the README writes them: the demo command from the repository root with its
default (relative) output folder, and ``prepare`` with relative paths. Both must work and leave the
checkout as it was, apart from the output folder they were given."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's first code block (its two set-up commands)."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


# Not the checkout's own content: environments, git's database, caches Python and pytest keep.
_SKIPPED = {".git", ".venv", ".venv-server", ".venv-slicer", "__pycache__", ".pytest_cache"}


def checkout_state() -> dict[str, int]:
    """Every file in the checkout (ignored ones included: a server's logs/ would be ignored) and when it changed."""
    state = {}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in _SKIPPED]
        for name in files:
            path = Path(folder) / name
            state[str(path.relative_to(ROOT))] = path.stat().st_mtime_ns
    return state


def changes(before: dict[str, int], after: dict[str, int], allowed: str | None = None) -> list[str]:
    changed = [path for path, stamp in after.items() if before.get(path) != stamp]
    return sorted(path for path in changed if not (allowed and path.startswith(allowed)))


@pytest.fixture
def output_folder_of_the_demo():
    """``demo-output`` in the checkout, with a user's own copy (if any) set aside and put back afterwards."""
    folder = ROOT / "demo-output"
    kept = ROOT / f".demo-output-kept-{uuid.uuid4().hex[:8]}"
    if folder.exists():
        folder.rename(kept)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if kept.exists():
            kept.rename(folder)


def test_the_readme_starts_with_the_demo_and_the_test_command():
    assert readme_commands() == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_demo_runs_as_written_and_leaves_the_checkout_clean(output_folder_of_the_demo, tmp_path):
    before = checkout_state()
    environment = {**os.environ, "ELASTIXMONAILABEL_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(readme_commands()[0].split(), cwd=ROOT, env=environment, capture_output=True, text=True,
                               timeout=1200)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (output_folder_of_the_demo / "segmentation.nii.gz").exists()
    assert (output_folder_of_the_demo / "segmentation.png").read_bytes().startswith(b"\x89PNG")
    assert "mean Dice over the 32 structures" in completed.stdout
    # The server's working files (logs, model, bin) stayed with its datastore, not in the app's folder.
    assert not (written := changes(before, checkout_state(), allowed="demo-output/")), f"the demo wrote into the checkout: {written}"


def test_prepare_with_relative_paths_writes_where_it_was_run(make_subject, tmp_path):
    source = tmp_path / "work" / "dataset" / "sub-01"
    source.mkdir(parents=True)
    subject = make_subject(seed=7, spacing_mm=3.0)
    for modality in ("t1", "t2"):
        shutil.copy(subject.path(modality), source / f"sub-01_{modality}.nii.gz")
    before = checkout_state()
    completed = subprocess.run(
        [sys.executable, "-m", "ElastixMonaiLabelLib", "prepare", "dataset", "--out", "datastore", "--channels", "t1,t2",
         "--workers", "2"],
        cwd=tmp_path / "work", capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "work" / "datastore" / "sub-01.nii.gz").exists()
    assert not (written := changes(before, checkout_state())), f"prepare wrote into the checkout: {written}"
