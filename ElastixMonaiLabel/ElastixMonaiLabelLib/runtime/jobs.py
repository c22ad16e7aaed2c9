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

from ..errors import CancelledError
from .processes import BackgroundProcess, CancelToken
from .progress import JobReport

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
    """``function(report, cancel)`` on a daemon thread; ``report(fraction, message)`` feeds progress events
    (``report(None, line, "log")`` a log line: a :class:`.progress.JobReport`).

    For network calls: the GUI stays responsive while a request waits for the server.
    ``cancel`` sets the token the function is given; a function that checks it stops early.
    """

    def __init__(self, function: Callable[[JobReport, CancelToken], Any], name: str = "job") -> None:
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._token = CancelToken()
        self.result: Any = None
        self.exception: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(function,), name=name, daemon=True)
        self._thread.start()

    def _run(self, function) -> None:
        try:
            self.result = function(self._report, self._token)
        except BaseException as error:  # reported to the GUI thread through .error
            self.exception = error
        finally:
            self._done.set()

    def _report(self, fraction: float | None, message: str = "", kind: str = "progress") -> None:
        self._events.put(JobEvent(kind, message, fraction if kind == "progress" else None))

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
    package_parent = str(Path(__file__).resolve().parents[2])
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



class JobBoard:
    """The background jobs of a GUI, at most one per role ("registration", "segmentation"...), polled from one timer.

    The Slicer module's widget owns one board and a QTimer that calls :meth:`poll` while the
    board is not :attr:`idle`. ``poll`` hands over every job's events and each finished job with
    its ``on_done`` callback (the widget runs it on the GUI thread, where nodes may be touched).
    :meth:`later` starts a job after a delay without a sleeping thread (the training status every
    few seconds); :meth:`cancel_all` stops everything and forgets the callbacks, so that a
    closed scene or a closed module is never written to by a job that ends afterwards.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[str, tuple[Any, Callable[[Any], Any]]] = {}
        self._waiting: dict[str, tuple[float, Callable[[], Any], Callable[[Any], Any]]] = {}

    def start(self, role: str, job: Any, on_done: Callable[[Any], Any]) -> None:
        """Track ``job``; a role that is already running refuses (and cancels) the new job."""
        if role in self._running:
            job.cancel()
            raise RuntimeError(f"{role} is already running")
        self._waiting.pop(role, None)
        self._running[role] = (job, on_done)

    def later(self, role: str, delay_s: float, make_job: Callable[[], Any], on_done: Callable[[Any], Any]) -> None:
        """Start ``make_job()`` in ``role`` once ``delay_s`` seconds have passed (checked by :meth:`poll`)."""
        self._waiting[role] = (self._clock() + delay_s, make_job, on_done)

    def running(self, role: str) -> bool:
        return role in self._running or role in self._waiting

    @property
    def idle(self) -> bool:
        return not self._running and not self._waiting

    def cancel(self, role: str) -> None:
        """Ask the job in ``role`` to stop; it is reported finished (cancelled) by a later :meth:`poll`."""
        self._waiting.pop(role, None)
        if role in self._running:
            self._running[role][0].cancel()

    def cancel_all(self) -> None:
        """Stop every job and drop the callbacks: nothing runs on_done after this."""
        for job, _on_done in self._running.values():
            job.cancel()
        self._running.clear()
        self._waiting.clear()

    def poll(self) -> tuple[list[tuple[str, JobEvent]], list[tuple[str, Any, Callable[[Any], Any]]]]:
        """(role, event) for every new event, and (role, job, on_done) for every job that finished."""
        now = self._clock()
        for role, (due, make_job, on_done) in list(self._waiting.items()):
            if now >= due and role not in self._running:
                del self._waiting[role]
                self._running[role] = (make_job(), on_done)
        events, finished = [], []
        for role, (job, on_done) in list(self._running.items()):
            events += [(role, event) for event in job.poll()]
            if job.finished:
                del self._running[role]
                finished.append((role, job, on_done))
        return events, finished
