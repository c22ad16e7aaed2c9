"""The notebooks under notebooks/: executed top to bottom (those of the core's kernel here; the server's kernel's in
Testing/server/in_process/test_notebooks_server.py), stored without outputs, and rendered copies in docs/notebooks/ that match them.

Each notebook asserts its own key figures (registration error, Dice, the server's answers), so a notebook whose
results go wrong fails here with the cell and its traceback.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

import pytest
from notebook_checks import ROOT, notebooks_for, run_notebook, runner

ALL = runner.notebook_paths()


@pytest.mark.parametrize("path", notebooks_for("elastix-monailabel"), ids=lambda path: path.stem)
def test_notebook_runs_and_its_figures_hold(path, tmp_path, request):
    run_notebook(path, tmp_path, request.config)


def test_there_are_notebooks_and_each_runs_in_a_project_kernel():
    assert len(ALL) >= 5
    for path in ALL:
        assert runner.kernel_name(runner.read(path)) in runner.KERNELS, path.name
    # Each of the two environments runs its own notebooks; none is left out.
    assert len(notebooks_for("elastix-monailabel")) + len(notebooks_for("elastix-monailabel-server")) == len(ALL)


def test_notebooks_are_stored_without_outputs():
    """Outputs live in the rendered copies, not in git: notebook diffs stay readable."""
    for path in ALL:
        notebook = runner.read(path)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name} cell {index} holds outputs: clear them before committing (Jupyter: Edit > Clear Outputs)")


def test_rendered_copies_hold_the_notebooks_current_cells():
    for path in ALL:
        rendered = runner.RENDERED / f"{path.stem}.md"
        assert rendered.exists(), f"{rendered.relative_to(ROOT)} is missing: run bash scripts/render-notebooks.sh"
        text = rendered.read_text(encoding="utf-8")
        stale = runner.stale_cells(runner.read(path), text)
        assert not stale, f"{rendered.relative_to(ROOT)} is stale: run bash scripts/render-notebooks.sh {path.stem} ({stale[:3]})"
        for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
            assert (rendered.parent / picture).is_file(), f"{rendered.name} shows {picture}, which is missing"


def test_readme_links_every_rendered_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in ALL:
        assert f"docs/notebooks/{path.stem}.md" in readme, f"README does not link {path.stem}"


def test_drawing_a_figure_leaves_pyplot_alone(tmp_path):
    """figures.py draws without pyplot: a notebook's inline plots keep working after an overlay picture."""
    import itk
    import matplotlib
    import numpy as np

    from ElastixMonaiLabelLib.workflows.figures import overlay_figure

    previous = matplotlib.get_backend()
    matplotlib.use("svg")  # standing in for a notebook's inline backend: anything but Agg
    try:
        image = itk.image_from_array(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32))
        assert overlay_figure(image, [("x", image, image)], tmp_path / "overlay.png").stat().st_size > 0
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)


def _tiny_notebook(*cells):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "elastix-monailabel", "display_name": "ElastixMonaiLabel core", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text) for kind, text in cells]
    return notebook


def test_stale_cells_reports_every_kind_of_difference(tmp_path):
    notebook = _tiny_notebook(("md", "# Title\n\nWhy."), ("code", "x = 1\nprint(x)"), ("md", "What to look at."), ("code", "y = 2"))
    text = runner.render(notebook, "tiny", tmp_path).read_text(encoding="utf-8")
    assert runner.stale_cells(notebook, text) == []
    edited = copy.deepcopy(notebook)
    edited.cells[1].source = "x = 2\nprint(x)"
    removed = copy.deepcopy(notebook)
    del removed.cells[2]
    moved = copy.deepcopy(notebook)
    moved.cells[1], moved.cells[3] = moved.cells[3], moved.cells[1]
    for changed in (edited, removed, moved):
        assert runner.stale_cells(changed, text), changed.cells
    assert runner.stale_cells(notebook, text.replace("What to look at.", "What to look at. And prose added by hand."))


def test_a_failing_cell_shuts_its_kernel_down_so_atexit_handlers_run(tmp_path):
    """Notebook 03 stops its server with atexit: that must hold when a later cell fails."""
    from nbclient.exceptions import CellExecutionError

    pid_file = tmp_path / "child.pid"
    notebook = _tiny_notebook(
        ("code", "import atexit, subprocess, sys\n"
                 "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
                 f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                 "atexit.register(child.kill)"),
        ("code", "raise RuntimeError('a deliberately failing cell')"))
    path = tmp_path / "probe.ipynb"
    path.write_text(nbformat_text(notebook), encoding="utf-8")
    with pytest.raises(CellExecutionError, match="deliberately failing"):
        runner.execute(path, output=tmp_path / "out", timeout=60)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(pid), "the kernel outlived its notebook run: atexit handlers did not run"


def nbformat_text(notebook) -> str:
    import nbformat

    return nbformat.writes(notebook)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited
