"""What the two notebook test modules share: running one notebook in its kernel, as scripts/run_notebooks.py does.

Testing/notebooks/test_notebooks.py runs the notebooks of the core's kernel (.venv); Testing/server/in_process/test_notebooks_server.py
those of the server's kernel (.venv-server: torch, MONAI, MONAI Label), each from its own environment.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)
# (name, seconds, outcome) of each notebook run in this session, for the summary at the end of the run.
EXECUTED = pytest.StashKey[list]()
# No cell of a notebook may take longer (each notebook takes one or two minutes in all on 2 cores).
CELL_TIMEOUT_S = 300


def notebooks_for(kernel: str) -> list[Path]:
    return [path for path in runner.notebook_paths() if runner.kernel_name(runner.read(path)) == kernel]


def run_notebook(path: Path, output: Path, config) -> None:
    """Execute ``path`` top to bottom (a failing cell or assertion fails the test with the cell and its traceback);
    record its time for the run's summary (see conftest.pytest_terminal_summary)."""
    from nbclient.exceptions import CellExecutionError

    started = time.perf_counter()
    outcome = "failed"
    try:
        runner.execute(path, output=output, timeout=CELL_TIMEOUT_S)  # no real data: those sections are skipped
        outcome = "passed"
    except CellExecutionError as error:
        # The failing cell's source and traceback, without the terminal colours of IPython's traceback.
        pytest.fail(f"{path.name}: a cell failed\n{runner.plain_text(str(error))}", pytrace=False)
    finally:
        config.stash.setdefault(EXECUTED, []).append((path.name, time.perf_counter() - started, outcome))

