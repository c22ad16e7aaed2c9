"""The notebooks that run in the server's kernel (.venv-server: torch, MONAI, MONAI Label), executed top to bottom.

Their cells assert their key figures (the server answered, the training ran, the generator's outputs hold); the
other notebook checks are in Testing/notebooks/test_notebooks.py.
"""

import pytest
from notebook_checks import notebooks_for, run_notebook


@pytest.mark.parametrize("path", notebooks_for("elastix-monailabel-server"), ids=lambda path: path.stem)
def test_notebook_runs_and_its_figures_hold(path, tmp_path, request):
    run_notebook(path, tmp_path, request.config)
