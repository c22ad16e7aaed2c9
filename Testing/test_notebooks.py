"""The notebooks under notebooks/: executed top to bottom (those of the core's kernel here; the server's kernel's in
Testing/torch/test_notebooks_server.py), stored without outputs, and rendered copies in docs/notebooks/ that match them.

Each notebook asserts its own key figures (registration error, Dice, the server's answers), so a notebook whose
results go wrong fails here with the cell and its traceback.
"""

from __future__ import annotations

import re

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

    from ElastixMonaiLabelLib.figures import overlay_figure

    previous = matplotlib.get_backend()
    matplotlib.use("svg")  # standing in for a notebook's inline backend: anything but Agg
    try:
        image = itk.image_from_array(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32))
        assert overlay_figure(image, [("x", image, image)], tmp_path / "overlay.png").stat().st_size > 0
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(previous)
