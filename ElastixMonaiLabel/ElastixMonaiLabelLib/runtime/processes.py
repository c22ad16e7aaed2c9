"""Running a command in the background: output lines as they come, cancel kills the whole tree.

Used by the elastix executable engine here, and by the Slicer module (polled from a
QTimer) so that the GUI stays responsive. No Qt in here: a reader thread feeds a
queue, and the caller polls it.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import CancelledError


class CancelToken:
    """Thread-safe cancel flag shared between a GUI (or CLI signal handler) and a job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("cancelled by the user")


class BackgroundProcess:
    """A child process whose merged stdout/stderr lines are read on a thread.

    The child runs in its own process group (session) so that :meth:`kill` stops
    it and everything it started.
    """

    def __init__(self, command: Sequence[str | Path], cwd: str | Path | None = None, env: dict[str, str] | None = None) -> None:
        # Paths are made absolute here, once for every caller: the child may run in another folder
        # (a relative ``demo-output`` meant the caller's folder, not the server's).
        self.command = [os.path.abspath(part) if isinstance(part, Path) else str(part) for part in command]
        cwd = os.path.abspath(cwd) if cwd is not None else None
        self._lines: queue.Queue[str] = queue.Queue()
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        self._process = subprocess.Popen(
            self.command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            **kwargs,
        )
        self._reader = threading.Thread(target=self._read, name="process-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\r\n"))

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        """Exit code, or None while running."""
        return self._process.poll()

    def read_lines(self) -> list[str]:
        """Lines printed since the last call (never blocks)."""
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines

    def finished(self) -> bool:
        """True once the process exited and all its output was read."""
        return self._process.poll() is not None and not self._reader.is_alive() and self._lines.empty()

    def kill(self) -> None:
        """Stop the process and every process it started, also those that started their own process group
        (the elastix engine runs elastix in one, so that it can be stopped on its own)."""
        if self._process.poll() is not None:
            return
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)], capture_output=True, check=False)
        else:
            descendants = _descendants(self._process.pid)  # before the kill: orphans get re-parented
            for group in {self._process.pid, *(group for _pid, group in descendants)}:
                try:
                    os.killpg(group, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self._process.wait()

    def wait(self) -> int:
        code = self._process.wait()
        self._reader.join()
        return code


def _descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, process group) of every process below ``pid``, from ``ps`` (Linux and macOS)."""
    try:
        table = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    children: dict[int, list[tuple[int, int]]] = {}
    for line in table.splitlines():
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            child, parent, group = map(int, fields)
            children.setdefault(parent, []).append((child, group))
    found, stack = [], [pid]
    while stack:
        for child, group in children.get(stack.pop(), []):
            found.append((child, group))
            stack.append(child)
    return found


def run_process(
    command: Sequence[str],
    *,
    log: Callable[[str], None] | None = None,
    cancel: CancelToken | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    poll_interval: float = 0.05,
) -> int:
    """Run ``command`` to the end, passing each output line to ``log``; return its exit code.

    Raises CancelledError (after killing the process tree) when ``cancel`` is set.
    """
    process = BackgroundProcess(command, cwd=cwd, env=env)
    try:
        while not process.finished():
            if cancel is not None and cancel.cancelled:
                process.kill()
                raise CancelledError(f"cancelled by the user: {Path(process.command[0]).name} stopped")
            for line in process.read_lines():
                if log:
                    log(line)
            time.sleep(poll_interval)
        for line in process.read_lines():
            if log:
                log(line)
        return process.wait()
    except BaseException:
        process.kill()
        raise
