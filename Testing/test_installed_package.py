"""The package works installed, without the checkout: the wheel carries the core, its resources and the server app.

A wheel is built from the checkout and installed into new virtual environments in a temporary folder, with pip. To
keep this quick and offline, each new environment sees the pinned dependencies of an environment the test command
already made (.venv for the core, .venv-server for the server extra) through a folder of links, which leaves out this
project's own (editable) installation. pip installs the wheel alone (``--no-deps``, as scripts/install.sh does:
monailabel's own metadata asks for torchvision and a source build of sam2, which the app never uses), and every
requirement the wheel declares, for the core and for the ``server`` extra, must then be present at a version it
accepts. Commands then run from a folder outside the checkout, with the checkout neither on ``sys.path`` nor the working
directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = ("elastix_monailabel", "_elastix_monailabel", "__editable__", "ElastixMonaiLabelLib")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    wheels = list(dist.glob("elastix_monailabel-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def site_packages(environment: Path) -> Path:
    return next((environment / "lib").glob("python3.*/site-packages"))


def new_environment(folder: Path, dependencies_from: Path) -> Path:
    """A virtual environment in ``folder`` whose dependencies are those of ``dependencies_from``, minus this project."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    links = folder / "dependencies"
    links.mkdir()
    for entry in site_packages(dependencies_from).iterdir():
        if not entry.name.startswith(OWN) and entry.suffix != ".pth":
            (links / entry.name).symlink_to(entry)
    # A plain path line: the folder joins sys.path; .pth files inside it are not run (no editable finder of the checkout).
    (site_packages(folder) / "dependencies.pth").write_text(f"{links}\n")
    # MONAI Label's own command (a shell script that runs the `python` first on PATH), as its wheel installs it.
    if (dependencies_from / "bin" / "monailabel").exists():
        shutil.copy2(dependencies_from / "bin" / "monailabel", folder / "bin" / "monailabel")
    return folder


# Every requirement the installed package declares (for ``extra`` too) that is missing or at a version it refuses.
UNMET = """
import json, sys
from importlib.metadata import PackageNotFoundError, requires, version
from packaging.requirements import Requirement
unmet = []
for line in requires("elastix-monailabel") or []:
    requirement = Requirement(line)
    if requirement.marker and not requirement.marker.evaluate({"extra": sys.argv[1]}):
        continue
    try:
        found = version(requirement.name)
    except PackageNotFoundError:
        found = None
    if found is None or not requirement.specifier.contains(found, prereleases=True):
        unmet.append(f"{line} (found {found})")
print(json.dumps(unmet))
"""


def install(environment: Path, wheel: Path, extra: str = "") -> None:
    # pip (from the dependencies' environment) installs into the new one, from the wheel file only.
    python = environment / "bin" / "python"
    completed = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                                "--disable-pip-version-check", str(wheel)], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    checked = subprocess.run([str(python), "-c", UNMET, extra], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == [], f"requirements of the wheel{f' [{extra}]' if extra else ''} not met"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra or {})
    return env


def run(environment: Path, *arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900):
    return subprocess.run([str(environment / "bin" / arguments[0]), *arguments[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env or clean_env())


def where_it_imports(environment: Path, cwd: Path) -> dict[str, str]:
    script = ("import json, sys, ElastixMonaiLabelLib; "
              "print(json.dumps({'package': ElastixMonaiLabelLib.__file__, 'path': sys.path}))")
    completed = run(environment, "python", "-c", script, cwd=cwd)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def assert_outside_checkout(environment: Path, cwd: Path) -> None:
    found = where_it_imports(environment, cwd)
    assert Path(found["package"]).resolve().is_relative_to(site_packages(environment).resolve())
    assert not any((cwd / entry).resolve() in (ROOT, ROOT / "ElastixMonaiLabel") for entry in found["path"])


def test_the_core_installs_and_its_command_line_runs_outside_the_checkout(wheel, tmp_path):
    environment = new_environment(tmp_path / "core-env", ROOT / ".venv")
    install(environment, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_outside_checkout(environment, elsewhere)
    presets = run(environment, "elastix-monailabel", "presets", cwd=elsewhere)
    assert presets.returncode == 0 and "brain-rigid (default)" in presets.stdout, presets.stderr
    # Resources travel inside the package: the preset files are read from the installed copy.
    assert str(site_packages(environment)) in presets.stdout


def test_the_server_extra_segments_from_any_folder_and_monailabel_starts_the_printed_app(wheel, make_subject, tmp_path):
    environment = new_environment(tmp_path / "server-env", ROOT / ".venv-server")
    install(environment, wheel, "server")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_outside_checkout(environment, elsewhere)
    subject = make_subject(seed=11, spacing_mm=3.0)
    for modality in ("t1", "t2"):
        shutil.copy(subject.path(modality), elsewhere / f"sub-01_{modality.upper()}w.nii.gz")

    env = clean_env({"ELASTIXMONAILABEL_CACHE": str(tmp_path / "cache")})
    segment = run(environment, "elastix-monailabel", "segment", "sub-01_T1w.nii.gz", "sub-01_T2w.nii.gz", "--out", "seg",
                  "--atlases", "2", cwd=elsewhere, env=env)
    assert segment.returncode == 0, segment.stdout + segment.stderr
    for name in ("labels.nii.gz", "labels.csv", "segmentation.png", "volumes.csv", "qc.json"):
        assert (elsewhere / "seg" / name).is_file(), name
    qc = json.loads((elsewhere / "seg" / "qc.json").read_text())
    assert qc["model"] == "atlas_registration" and set(qc["channels"]) == {"t1", "t2"}
    assert 900 < qc["total_intracranial_ml"] < 2300

    # MONAI Label's own command, with the app folder the package prints (a stand-in under the datastore).
    datastore = elsewhere / "datastore"
    printed = run(environment, "elastix-monailabel", "server-app", str(datastore), cwd=elsewhere)
    assert printed.returncode == 0, printed.stderr
    app = Path(printed.stdout.strip())
    assert app.is_relative_to(datastore.resolve()) and (app / "main.py").is_file()
    port = _free_port()
    env = clean_env({"PATH": f"{environment / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                     "ELASTIXMONAILABEL_CACHE": str(tmp_path / "cache")})
    server = subprocess.Popen([str(environment / "bin" / "monailabel"), "start_server", "--app", str(app), "--studies",
                               str(datastore), "--host", "127.0.0.1", "--port", str(port), "--conf", "atlases", "2"],
                              cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        info = _wait_for_info(f"http://127.0.0.1:{port}/info/", server)
        assert "atlas_registration" in info["models"]
    finally:
        os.killpg(server.pid, 9)
        server.wait(timeout=60)
    site = site_packages(environment).resolve()
    assert not any(path.is_relative_to(site) for path in site.rglob("logs")), "MONAI Label wrote into the package"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_info(url: str, server: subprocess.Popen, timeout_s: float = 600) -> dict:
    # Waits for the server to answer, however busy the machine is; fails at once if it exits.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"monailabel start_server exited with {server.returncode}:\n{server.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"no answer from {url} within {timeout_s:g} s")
