"""Issue 13's command-line probes, run as a user would (``python -m ElastixMonaiLabelLib``, real files, real signals)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

COMMAND = [sys.executable, "-m", "ElastixMonaiLabelLib"]


def run(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dataset(make_subject, tmp_path_factory) -> Path:
    """Six cases (generic layout) from two generated 3 mm subjects."""
    source = tmp_path_factory.mktemp("dataset")
    subjects = [make_subject(seed=20, spacing_mm=3.0), make_subject(seed=21, spacing_mm=3.0)]
    for index in range(6):
        case = source / f"case-{index:03d}"
        case.mkdir()
        for modality in ("t1", "t2", "flair"):
            shutil.copy(subjects[index % 2].path(modality), case / f"case-{index:03d}_{modality}.nii.gz")
    return source


def _interrupt_after_first_case(args: list, out: Path) -> tuple[int, str, float]:
    """Start prepare, press Ctrl-C (SIGINT to the whole process group, as a terminal does) once the first case is
    done; return the exit code, stderr and the seconds from Ctrl-C to exit."""
    process = subprocess.Popen([*COMMAND, "--events", "prepare", *map(str, args), "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in process.stdout:
            if '"message": "1/' in line:  # progress event: first case finished
                break
        else:
            pytest.fail(f"prepare ended before its first case: {process.wait()} {process.stderr.read()[-2000:]}")
        pressed = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        process.stdout.read()
        code = process.wait(timeout=120)
        return code, process.stderr.read(), time.monotonic() - pressed
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def _assert_clean_datastore(out: Path, summary: dict) -> None:
    """Every case file has its marker (nothing half-done under a final name); the summary adds up."""
    cases = {p.name[: -len(".nii.gz")] for p in out.glob("*.nii.gz")}
    markers = {p.stem for p in (out / ".prepare").glob("*.json")}
    assert cases == markers == set(summary["done"]), (cases, markers, summary)
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    assert sorted(summary["done"] + summary["cancelled"] + list(summary["failed"])) == [f"case-{i:03d}" for i in range(6)]


@pytest.mark.parametrize("how", ["sequential", "workers", "dask"])
def test_one_ctrl_c_stops_prepare_cleanly_with_a_summary(dataset, tmp_path, how):
    out = tmp_path / "datastore"
    extra = {"sequential": [], "workers": ["--workers", 2], "dask": ["--scheduler", "local", "--workers", 2]}[how]
    code, stderr, seconds = _interrupt_after_first_case([dataset, *extra], out)
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "cancelled by the user" in stderr
    summary = json.loads((out / "prepare_summary.json").read_text())
    # The cancel reached the workers (or the Dask scheduler): the run stopped early. Cases are seconds each and
    # Ctrl-C comes after the first of six, so a run that kept going would finish them all and cancel none.
    # (A running Dask job cannot be interrupted: its case may still complete, marker and all; queued ones never start.)
    assert summary["done"] and summary["cancelled"], summary
    assert not summary["failed"], summary
    _assert_clean_datastore(out, summary)
    print(f"prepare ({how}): exit 130 {seconds:.1f} s after Ctrl-C; done {len(summary['done'])}, "
          f"cancelled {len(summary['cancelled'])}")
    if how == "sequential":
        # A rerun prepares exactly the cancelled cases.
        rerun = run("prepare", dataset, "--out", out)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        again = json.loads((out / "prepare_summary.json").read_text())
        assert again["skipped"] == summary["done"] and again["done"] == summary["cancelled"]


def test_register_a_volume_onto_itself_is_a_success(make_subject, tmp_path):
    t1 = make_subject(seed=20, spacing_mm=3.0).path("t1")
    completed = run("register", "--fixed", t1, "--moving", t1, "--out", tmp_path / "out")
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "t1_registration.json").read_text())
    assert report["already_aligned"] and report["metric_improved"] and report["start_displacement_mm"] < 0.3
    assert "similarity went down" not in completed.stderr


def test_truncated_nifti_is_bad_input_not_a_crash(make_subject, tmp_path):
    subject = make_subject(seed=20, spacing_mm=3.0)
    data = subject.path("t2").read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(data[: len(data) // 2])
    completed = run("register", "--fixed", subject.path("t1"), "--moving", truncated, "--out", tmp_path / "out")
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert f"{truncated}: unreadable: truncated or damaged NIfTI file" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["register", "--fixed", "a.nii.gz", "--moving", "b.nii.gz", "--out", "OUT", "--threads", "-1"], "--threads: must be 1 or more, not -1"),
    (["register", "--fixed", "a.nii.gz", "--moving", "b.nii.gz", "--out", "OUT", "--threads", "two"], "--threads: must be a whole number"),
    (["prepare", "SRC", "--out", "OUT", "--workers", "0"], "--workers: must be 1 or more, not 0"),
    (["prepare", "SRC", "--out", "OUT", "--atlases", "0"], "--atlases: must be 1 or more, not 0"),
    (["sample-data", "--out", "OUT", "--spacing", "0"], "--spacing: must be > 0, not 0"),
    (["sample-data", "--out", "OUT", "--spacing", "nan"], "--spacing: must be > 0, not nan"),
    (["sample-data", "--out", "OUT", "--subjects", "-2"], "--subjects: must be 1 or more, not -2"),
    (["sample-data", "--out", "OUT", "--seed", "-1"], "--seed: must be 0 or more, not -1"),
    (["prepare", "MISSING", "--out", "OUT"], "MISSING: dataset folder not found"),
    (["prepare", "EMPTY", "--out", "OUT"], "no case found for layout generic"),
])
def test_bad_arguments_exit_2_and_create_nothing(tmp_path, args, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "SRC").mkdir()
    placed = [str(tmp_path / a) if a in ("OUT", "SRC", "MISSING", "EMPTY") else a for a in args]
    completed = run(*placed)
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    assert message.replace("MISSING", str(tmp_path / "MISSING")) in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "OUT").exists()


def test_prepare_that_cannot_reach_its_scheduler_leaves_no_out_folder(dataset, tmp_path):
    completed = run("prepare", dataset, "--out", tmp_path / "OUT", "--scheduler", "tcp://127.0.0.1:1", timeout=120)
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in completed.stderr
    assert not (tmp_path / "OUT").exists()
