"""The background process runner: output lines as they come, exit codes, cancel kills the tree."""

import os
import sys
import time

import pytest

from ElastixMonaiLabelLib.errors import CancelledError
from ElastixMonaiLabelLib.runtime.processes import BackgroundProcess, CancelToken, run_process


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_lines_arrive_while_running_and_exit_code_is_kept():
    script = "import sys, time\nfor i in range(3):\n    print('step', i, flush=True); time.sleep(0.3)\nsys.exit(4)"
    process = BackgroundProcess([sys.executable, "-c", script])
    first = []
    deadline = time.time() + 5
    while not first and time.time() < deadline:
        first = process.read_lines()
        time.sleep(0.02)
    assert first and first[0] == "step 0"
    assert process.poll() is None  # still running when the first line came
    assert process.wait() == 4
    assert first + process.read_lines() == ["step 0", "step 1", "step 2"]


def test_run_process_passes_lines_and_stderr():
    lines = []
    code = run_process([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"], log=lines.append)
    assert code == 0 and sorted(lines) == ["err", "out"]


def test_cancel_kills_the_whole_process_tree(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True); time.sleep(60)\n"
    )
    cancel = CancelToken()
    lines = []

    def log(line):
        lines.append(line)
        cancel.cancel()  # cancel as soon as the job reports it runs

    started = time.time()
    with pytest.raises(CancelledError):
        run_process([sys.executable, "-c", script], log=log, cancel=cancel)
    assert time.time() - started < 10
    child = int(pid_file.read_text())
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the grandchild survived the cancel"


def test_kill_stops_a_running_process():
    process = BackgroundProcess([sys.executable, "-c", "import time; time.sleep(60)"])
    process.kill()
    assert process.poll() is not None and not _alive(process.pid)
    assert os.name == "posix"
