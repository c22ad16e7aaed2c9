"""Execute the notebooks under notebooks/ in their own environment's kernel, and render them for docs/notebooks/.

Each notebook names its kernel in its metadata: ``elastix-monailabel`` (``.venv``: the core,
itk-elastix) or ``elastix-monailabel-server`` (``.venv-server``: torch, MONAI, MONAI Label). The
set-up scripts install both kernel specs inside their environment (``share/jupyter/kernels``) and
this runner looks only there: a notebook runs with the packages the project pinned, never with
whatever kernel a machine happens to have.

    .venv/bin/python scripts/run_notebooks.py run [NAME ...]     execute; stop at the first failing cell
    .venv/bin/python scripts/run_notebooks.py render [NAME ...]  execute, then write docs/notebooks/NAME.md
                                                                (+ NAME_files/*.png)

NAME is a notebook's file name without ``.ipynb`` (default: all). What the notebooks write goes
to ``$NOTEBOOK_OUTPUT`` (default ``notebook-output/`` in the checkout, ignored by git).
The rendered copy holds every cell's source verbatim, so a test can check that it is current
(:func:`stale_cells`); the outputs in it are those of the last rendering.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RENDERED = ROOT / "docs" / "notebooks"
# Kernel name in a notebook's metadata -> the environment whose kernel spec runs it (and its set-up script).
KERNELS = {
    "elastix-monailabel": (".venv", "scripts/setup-env.sh"),
    "elastix-monailabel-server": (".venv-server", "scripts/setup-server-env.sh"),
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if names:
        known = {p.stem: p for p in paths}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"no such notebook: {', '.join(unknown)} (have: {', '.join(known)})")
        paths = [known[n] for n in names]
    return paths


def read(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def kernel_name(notebook) -> str:
    name = notebook.metadata.get("kernelspec", {}).get("name")
    if name not in KERNELS:
        raise ValueError(f"the notebook's kernel {name!r} is none of {', '.join(KERNELS)}")
    return name


def kernel_spec_manager():
    """Kernel specs from the project's two environments only."""
    from jupyter_client.kernelspec import KernelSpecManager

    dirs = [str(ROOT / venv / "share" / "jupyter" / "kernels") for venv, _ in KERNELS.values()]
    return KernelSpecManager(kernel_dirs=dirs, ensure_native_kernel=False)


def kernel_environment(output: Path, scratch: Path, real_data: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # notebooks/helpers.py: the "on your own data" sections run on this folder, or are skipped without one.
    env["ELASTIXMONAILABEL_REAL_DATA"] = str(Path(real_data).resolve()) if real_data else ""
    # A batch run leaves nothing in the user's home: IPython's profile and history go to a scratch folder.
    env["IPYTHONDIR"] = str(scratch / "ipython")
    # ipykernel picks matplotlib's inline backend only when MPLBACKEND is unset (test runs set Agg).
    env.pop("MPLBACKEND", None)
    env["NOTEBOOK_OUTPUT"] = str(output)
    # The checkout's core first, in whichever environment the kernel runs.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "ElastixMonaiLabel"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def execute(path: Path, output: Path | None = None, timeout: int = 900, real_data: Path | None = None):
    """Run a notebook top to bottom in its kernel (cwd: notebooks/); return it with its outputs.

    A failing cell raises nbclient's CellExecutionError, which shows the cell and the traceback.
    """
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = read(path)
    name = kernel_name(notebook)
    specs = kernel_spec_manager()
    try:
        specs.get_kernel_spec(name)
    except NoSuchKernel:
        venv, setup = KERNELS[name]
        raise RuntimeError(f"{path.name} needs the kernel {name!r} of {venv}: run bash {setup}") from None
    output = Path(output or os.environ.get("NOTEBOOK_OUTPUT") or ROOT / "notebook-output").resolve()
    import zmq

    with tempfile.TemporaryDirectory(prefix="notebook-run-") as scratch:
        # Encrypted kernel channels where pyzmq can (the kernel warns about plain TCP otherwise); the connection
        # file in the scratch folder, not in Jupyter's runtime folder under the user's home.
        manager = KernelManager(kernel_name=name, kernel_spec_manager=specs, connection_file=str(Path(scratch) / "kernel.json"),
                                transport_encryption="auto" if zmq.has("curve") else "disabled")
        client = NotebookClient(notebook, km=manager, timeout=timeout, resources={"metadata": {"path": str(NOTEBOOKS)}})
        # cleanup_kc: nbclient shuts the kernel down itself (a given KernelManager is otherwise left running until
        # this process exits, and then killed without its atexit handlers, e.g. the one stopping a server).
        client.execute(env=kernel_environment(output, Path(scratch), real_data), cleanup_kc=True)
    return notebook


# -- rendering ---------------------------------------------------------------------------------

def plain_text(text: str) -> str:
    """``text`` without terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI.sub("", text)


def _text(value) -> str:
    return plain_text("".join(value) if isinstance(value, list) else str(value)).rstrip("\n")


def _fence(text: str, language: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{language}\n{text}\n{ticks}"


def code_block(source: str) -> str:
    return _fence(source, "python")


def _outputs(cell, files: Path, prefix: str) -> list[str]:
    parts: list[str] = []
    previous = None
    for number, output in enumerate(cell.get("outputs", [])):
        kind = output.get("output_type")
        if kind == "stream" and previous == (kind, output.get("name")):
            # One stream printed in several pieces (a loop that prints as it goes): one block.
            parts[-1] = _fence(parts[-1].split("\n", 1)[1].rsplit("\n", 1)[0] + "\n" + _text(output.get("text", "")), "text")
        elif kind == "stream":
            parts.append(_fence(_text(output.get("text", "")), "text"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "image/png" in data:
                name = f"{prefix}-{number}.png"
                (files / name).write_bytes(base64.b64decode(data["image/png"]))
                parts.append(f"![output]({files.name}/{name})")
            elif WIDGET_VIEW in data:
                parts.append("*(an interactive widget here when the notebook runs in Jupyter)*")
            elif "text/markdown" in data:
                parts.append(_text(data["text/markdown"]))
            elif "text/plain" in data:
                parts.append(_fence(_text(data["text/plain"]), "text"))
        elif kind == "error":
            raise ValueError(f"cell {prefix} failed ({output.get('ename')}): fix the notebook before rendering it")
        previous = (kind, output.get("name"))
    return parts


def render(notebook, name: str, out_dir: Path = RENDERED) -> Path:
    """Markdown of an executed notebook: every cell's source verbatim, then its outputs (pictures as PNG files)."""
    files = out_dir / f"{name}_files"
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    blocks = [f"<!-- Rendered from notebooks/{name}.ipynb by scripts/render-notebooks.sh: edit the notebook, "
              "not this file. -->"]
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type in ("markdown", "code"):
            blocks.append(_cell_marker(index))  # invisible on GitHub; lets stale_cells compare cell by cell
        if cell.cell_type == "markdown":
            blocks.append(cell.source)
        elif cell.cell_type == "code":
            blocks.append(code_block(cell.source))
            blocks.extend(_outputs(cell, files, f"cell{index:02d}"))
    if not any(files.iterdir()):
        files.rmdir()
    path = out_dir / f"{name}.md"
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def _cell_marker(index: int) -> str:
    return f"<!-- cell {index} -->"


def stale_cells(notebook, markdown: str) -> list[str]:
    """How the rendered copy differs from ``notebook``'s cells (empty: the copy is current).

    The copy holds each markdown and code cell after its marker, in order: a markdown cell's text
    exactly, a code cell's fenced source followed by its outputs. A cell added, removed, edited or
    moved in either place, or text added to a markdown cell in the copy, is reported.
    """
    pieces = re.split(r"^<!-- cell (\d+) -->$", markdown, flags=re.M)
    rendered = {int(number): text.strip("\n") for number, text in zip(pieces[1::2], pieces[2::2])}
    cells = {index: cell for index, cell in enumerate(notebook.cells) if cell.cell_type in ("markdown", "code")}
    problems = []
    for index, cell in cells.items():
        label = f"cell {index} ({cell.cell_type}): {cell.source.strip().splitlines()[0] if cell.source.strip() else '(empty)'}"
        text = rendered.get(index)
        if text is None:
            problems.append(f"{label} is missing")
        elif cell.cell_type == "markdown" and text != cell.source.strip("\n"):
            problems.append(f"{label} differs")
        elif cell.cell_type == "code" and not (text == code_block(cell.source) or text.startswith(code_block(cell.source) + "\n")):
            problems.append(f"{label} differs")
    problems += [f"cell {index} is in the rendered copy only" for index in sorted(set(rendered) - set(cells))]
    if list(rendered) != sorted(rendered):
        problems.append("the rendered copy's cells are out of order")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("run", "render"))
    parser.add_argument("names", nargs="*", help="notebook names without .ipynb (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds one cell may take")
    parser.add_argument("--real-data", type=Path, help="folder of real scans for the 'on your own data' sections "
                        "(the layout of the project's real-data folder; default: those sections are skipped)")
    args = parser.parse_args(argv)
    if args.real_data and not args.real_data.is_dir():
        parser.error(f"--real-data {args.real_data}: no such folder")
    total = 0.0
    fresh = None
    if args.action == "render" and not os.environ.get("NOTEBOOK_OUTPUT"):
        # Rendered copies show a run from scratch, not one that reused an earlier run's files.
        fresh = tempfile.TemporaryDirectory(prefix="notebook-render-")
    for path in notebook_paths(args.names):
        started = time.perf_counter()
        notebook = execute(path, output=Path(fresh.name) if fresh else None, timeout=args.timeout, real_data=args.real_data)
        seconds = time.perf_counter() - started
        total += seconds
        written = f" -> {render(notebook, path.stem).relative_to(ROOT)}" if args.action == "render" else ""
        print(f"{path.name}: {seconds:.0f} s{written}", flush=True)
    print(f"total {total:.0f} s")
    if fresh:
        fresh.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
