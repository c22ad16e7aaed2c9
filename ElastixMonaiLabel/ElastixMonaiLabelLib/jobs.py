"""Long work off the GUI thread, polled: a command-line job speaking JSON events, or a function on a thread.

The Slicer module polls a job from a QTimer (never blocking the GUI); the same jobs run
here in tests. Both kinds answer the same questions: :meth:`poll` (events since the
last call), :attr:`finished`, :attr:`error`, :attr:`result` and :meth:`cancel`.

Events travel from ``elastix-monailabel --events ...`` as single lines
``@elastix-monailabel {"event": "progress", "fraction": 0.4, "message": "t2 -> t1"}``,
so they stay apart from elastix's own log lines on the same stream.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CancelledError
from .process import BackgroundProcess, CancelToken

EVENT_PREFIX = "@elastix-monailabel "


def format_event(kind: str, **fields: Any) -> str:
    """One event line: ``@elastix-monailabel {"event": kind, ...}``."""
    return EVENT_PREFIX + json.dumps({"event": kind, **fields}, default=str)


def parse_event(line: str) -> dict[str, Any] | None:
    """The event in ``line``, or None for an ordinary log line (malformed events count as log lines)."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


@dataclass
class JobEvent:
    """What a job reported: ``progress`` (fraction 0..1 and a message), ``log`` (a line) or ``result`` (data)."""

    kind: str
    message: str = ""
    fraction: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


class ProcessJob:
    """A command (normally ``elastix-monailabel --events ...``) run in its own process group.

    ``cancel`` kills the process and everything it started (elastix included).
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> None:
        self.command = [str(part) for part in command]
        self._process = BackgroundProcess(self.command, cwd=cwd, env=dict(env) if env is not None else None)
        self.results: list[dict[str, Any]] = []
        self.exit_code: int | None = None
        self._error_message: str | None = None
        self._tail: list[str] = []
        self._cancelled = False

    def poll(self) -> list[JobEvent]:
        """Events since the last call; never blocks."""
        events = []
        for line in self._process.read_lines():
            event = parse_event(line)
            if event is None:
                self._tail = (self._tail + [line])[-20:]
                events.append(JobEvent("log", line))
            elif event["event"] == "progress":
                events.append(JobEvent("progress", str(event.get("message", "")), float(event.get("fraction", 0.0))))
            elif event["event"] == "result":
                self.results.append(event)
                events.append(JobEvent("result", data=event))
            elif event["event"] == "error":
                self._error_message = str(event.get("message", "failed"))
                events.append(JobEvent("log", "error: " + self._error_message))
        if self.exit_code is None and self._process.finished():
            self.exit_code = self._process.wait()
        return events

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def error(self) -> str | None:
        """Why the job failed (its error event, else its last output lines); None while running or on success."""
        if self.exit_code in (None, 0) and not self._cancelled:
            return None
        if self._cancelled:
            return "cancelled by the user"
        if self._error_message:
            return self._error_message
        return f"exit code {self.exit_code}: " + " | ".join(self._tail[-5:])

    @property
    def result(self) -> list[dict[str, Any]]:
        return self.results

    def cancel(self) -> None:
        self._cancelled = True
        self._process.kill()

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait(self, timeout: float | None = None, on_event: Callable[[JobEvent], None] | None = None,
             interval: float = 0.05) -> None:
        """Block until finished (for scripts and tests); on timeout the job is cancelled and TimeoutError raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for event in self.poll():
                if on_event:
                    on_event(event)
            if self.finished:
                return
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"{Path(self.command[0]).name} still running after {timeout:g} s; stopped")
            time.sleep(interval)


class ThreadJob:
    """``function(report, cancel)`` on a daemon thread; ``report(fraction, message)`` feeds progress events.

    For network calls: the GUI stays responsive while a request waits for the server.
    ``cancel`` sets the token the function is given; a function that checks it stops early.
    """

    def __init__(self, function: Callable[[Callable[[float, str], None], CancelToken], Any], name: str = "job") -> None:
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._token = CancelToken()
        self.result: Any = None
        self.exception: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(function,), name=name, daemon=True)
        self._thread.start()

    def _run(self, function) -> None:
        try:
            self.result = function(lambda fraction, message="": self._events.put(JobEvent("progress", message, fraction)),
                                   self._token)
        except BaseException as error:  # reported to the GUI thread through .error
            self.exception = error
        finally:
            self._done.set()

    def poll(self) -> list[JobEvent]:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    @property
    def finished(self) -> bool:
        return self._done.is_set() and self._events.empty()

    @property
    def cancelled(self) -> bool:
        return self._token.cancelled

    @property
    def error(self) -> str | None:
        if self.exception is None:
            return None
        if isinstance(self.exception, CancelledError):
            return "cancelled by the user"
        return str(self.exception) or type(self.exception).__name__

    def cancel(self) -> None:
        self._token.cancel()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until done; return the result or raise the function's exception."""
        if not self._done.wait(timeout):
            self.cancel()
            raise TimeoutError(f"{self._thread.name} still running after {timeout:g} s")
        if self.exception is not None:
            raise self.exception
        return self.result


def cli_command(python: str | Path, *arguments: str | Path) -> list[str]:
    """``python -m ElastixMonaiLabelLib --events ARGS``: the command line run by a Python (PythonSlicer in Slicer)."""
    return [str(python), "-m", "ElastixMonaiLabelLib", "--events", *(str(a) for a in arguments)]


def cli_environment(base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for :func:`cli_command`: this package importable, unbuffered output, ``extra`` on top."""
    env = dict(os.environ if base is None else base)
    package_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def registration_job(
    python: str | Path,
    reference: str | Path,
    moving: Sequence[str | Path],
    out_dir: str | Path,
    *,
    preset: str | None = None,
    engine: str = "itk",
    reference_mask: str | Path | None = None,
    elastix: str | Path | None = None,
    transformix: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    threads: int | None = None,
) -> ProcessJob:
    """Start ``register`` in a background process; its result events carry each modality's files and report.

    ``elastix``/``transformix``/``env``: the executables for engine "executable" (SlicerElastix's) and the
    environment they need (library paths).
    """
    arguments: list[str | Path] = ["register", "--fixed", reference, "--moving", *moving, "--out", out_dir, "--engine", engine]
    if preset:
        arguments += ["--preset", preset]
    if reference_mask:
        arguments += ["--fixed-mask", reference_mask]
    if threads:
        arguments += ["--threads", str(threads)]
    extra = {}
    if elastix:
        extra["ELASTIX_EXECUTABLE"] = str(elastix)
    if transformix:
        extra["TRANSFORMIX_EXECUTABLE"] = str(transformix)
    return ProcessJob(cli_command(python, *arguments), env=cli_environment(env, extra))

