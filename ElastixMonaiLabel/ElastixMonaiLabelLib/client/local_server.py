"""Start and stop a local MONAI Label server running this project's app.

The server runs in its own Python environment (``.venv-server``: monailabel's pins must
not enter the caller's), bound to 127.0.0.1 unless asked otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .rest import TOKEN_ENVIRONMENT_VARIABLE, MonaiLabelClient, ServerError
from ..runtime.files import write_text
from ..runtime.processes import BackgroundProcess

# A source checkout (or an editable install of one): the app and the server's environment sit beside the package.
CHECKOUT = Path(__file__).resolve().parents[3]
# An installed package (a wheel): the app travels inside it (pyproject.toml puts MonaiLabelApp/ there).
PACKAGED_APP = Path(__file__).resolve().parents[1] / "server_app"
SERVER_PYTHON_VARIABLE = "ELASTIXMONAILABEL_SERVER_PYTHON"


def default_app() -> Path:
    """The MONAI Label app: the checkout's ``MonaiLabelApp/`` when there is one, else the copy inside the package."""
    for folder in (CHECKOUT / "MonaiLabelApp", PACKAGED_APP):
        if (folder / "main.py").is_file():
            return folder
    raise ServerError(f"this project's MONAI Label app is missing (looked in {CHECKOUT / 'MonaiLabelApp'} and {PACKAGED_APP}); "
                      "reinstall the package")


def default_python() -> Path:
    """The Python that runs the server: ``$ELASTIXMONAILABEL_SERVER_PYTHON``; else the checkout's ``.venv-server``
    (made by scripts/setup-server-env.sh); else this Python when MONAI Label is installed beside the package (the
    ``server`` extra)."""
    explicit = os.environ.get(SERVER_PYTHON_VARIABLE)
    if explicit:
        return Path(explicit)
    checkout_python = CHECKOUT / ".venv-server" / "bin" / "python"
    if checkout_python.exists():
        return checkout_python
    if importlib.util.find_spec("monailabel") is not None:
        return Path(sys.executable)
    raise ServerError("no Python with MONAI Label was found for the server: in a source checkout run "
                      "scripts/setup-server-env.sh; for an installed package install its 'server' extra "
                      f"(see docs/install.md), or set ${SERVER_PYTHON_VARIABLE} to a Python that has it")


# Under the datastore: the folder MONAI Label is told is the app (see runtime_app_dir).
RUNTIME_FOLDER = ".server"


def runtime_app_dir(studies: Path, app: Path | None = None) -> Path:
    """A stand-in app folder under the datastore, whose ``main.py`` runs the real app's.

    MONAI Label creates ``logs``, ``model``, ``bin`` and ``lib`` in the app folder it is given and
    the app keeps its working files there: given this folder, they stay with the datastore and the
    checkout's ``MonaiLabelApp/`` is never written to. The stand-in is a few lines of Python, not a
    link (no link leaves the datastore, and it works where links need privileges).
    """
    folder = studies / RUNTIME_FOLDER / "app"
    folder.mkdir(parents=True, exist_ok=True)
    real_main = ((app or default_app()) / "main.py").resolve()
    write_text(folder / "main.py", RUNTIME_MAIN.format(app=repr(str(real_main.parent)), main=repr(str(real_main))))
    return folder


# The stand-in main.py: the real app's folder goes first on sys.path (its ``lib`` package wins over the
# empty ``lib`` MONAI Label makes here) and its main.py runs in this module, under its own file name.
RUNTIME_MAIN = """# Written by ElastixMonaiLabelLib.client.local_server: runs {main} (MONAI Label's working files stay here).
import sys
from pathlib import Path

sys.path.insert(0, {app})
__file__ = {main}
exec(compile(Path(__file__).read_text(encoding="utf-8"), __file__, "exec"))
"""
# --conf settings that name files or folders: made absolute here, since the server runs in another folder.
PATH_SETTINGS = ("cache", "model_dir", "synthseg_weights", "synthseg_label_maps", "synthseg_checkout")
# Words some of those settings take instead of a path.
SETTING_WORDS = ("none", "auto", "off", "on", "")
# Addresses that mean "every interface": the server is reached on this machine through 127.0.0.1.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def absolute_settings(conf: dict[str, str]) -> dict[str, str]:
    """``conf`` with its path settings made absolute (relative ones meant the caller's folder)."""
    return {key: os.path.abspath(value) if key in PATH_SETTINGS and str(value).lower() not in SETTING_WORDS
            and not os.path.isabs(value) else str(value) for key, value in conf.items()}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalServer:
    """A MONAI Label server process; use as a context manager or call start()/stop()."""

    def __init__(
        self, studies: str | Path, *, app: str | Path | None = None, python: str | Path | None = None,
        host: str = "127.0.0.1", port: int | None = None, conf: dict[str, str] | None = None, start_timeout: float = 600.0,
        env: dict[str, str] | None = None, token: str | None = None,
    ) -> None:
        """``env``: variables set for the server on top of this process's environment. ``token``: the access
        token the server requires and the returned clients send (passed through the environment, not the
        command line, so that other users' ``ps`` does not show it); default: ``$ELASTIXMONAILABEL_TOKEN``."""
        self.studies = Path(studies).resolve()
        self.app = Path(app).resolve() if app is not None else default_app()
        self.python = Path(python) if python is not None else default_python()
        self.host, self.port = host, port or free_port(host)
        self.conf = absolute_settings(conf or {})
        self.env = {**(env or {}), **({TOKEN_ENVIRONMENT_VARIABLE: token} if token else {})}
        self.token = token
        self.start_timeout = start_timeout
        self.process: BackgroundProcess | None = None
        self.log: deque[str] = deque(maxlen=400)

    @property
    def url(self) -> str:
        """Where clients on this machine reach it (127.0.0.1 when it listens on every interface)."""
        host = "127.0.0.1" if self.host in WILDCARD_HOSTS else f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, cancel: Any = None) -> MonaiLabelClient:
        """Start the server and wait until it answers; ``cancel`` (a CancelToken) stops the wait and the server."""
        try:
            return self._start(cancel)
        except BaseException:
            self.stop()  # never leave a server behind: a second Ctrl-C, a cancel, a timeout
            raise

    def _start(self, cancel: Any) -> MonaiLabelClient:
        if not self.python.exists():
            raise ServerError(f"the server's Python {self.python} is missing; run scripts/setup-server-env.sh")
        self.studies.mkdir(parents=True, exist_ok=True)
        app_dir = runtime_app_dir(self.studies, self.app)
        command = [self.python, "-m", "monailabel.main", "start_server", "--app", app_dir, "--studies", self.studies,
                   "--host", self.host, "--port", str(self.port)]
        for key, value in self.conf.items():
            command += ["--conf", key, str(value)]
        self.process = BackgroundProcess(command, cwd=app_dir, env={**os.environ, **self.env} if self.env else None)
        client = MonaiLabelClient(self.url, timeout=10, token=self.token)
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            self.log.extend(self.process.read_lines())
            if self.process.poll() is not None:
                self.log.extend(self.process.read_lines())
                raise ServerError(f"the MONAI Label server exited with code {self.process.poll()}:\n" + "\n".join(list(self.log)[-30:]))
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                client.info()
                return MonaiLabelClient(self.url, timeout=600, token=self.token)
            except ServerError as error:
                if error.status is not None and error.status != 503:
                    raise  # it answers, with a refusal (a token, a host): waiting longer will not change that
                time.sleep(0.5)
        raise ServerError(f"the MONAI Label server did not answer within {self.start_timeout:g} s:\n" + "\n".join(list(self.log)[-30:]))

    def follow(self, cancel: Any = None, echo: Callable[[str], None] = print, poll_s: float = 0.5) -> int:
        """Print the running server's log as it comes until it exits or ``cancel`` is set; return its exit code."""
        if self.process is None:
            raise ServerError("the server is not running")
        for line in self.log:
            echo(line)
        while self.process.poll() is None and not (cancel is not None and cancel.cancelled):
            for line in self.process.read_lines():
                echo(line)
            time.sleep(poll_s)
        code = self.process.poll()
        return 0 if code is None else code

    def stop(self) -> None:
        if self.process is not None:
            self.log.extend(self.process.read_lines())
            self.process.kill()
            self.process = None

    def __enter__(self) -> MonaiLabelClient:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
