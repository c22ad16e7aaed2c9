"""Background jobs as the Slicer module runs them: the registration command line in its own process
group (progress and results as JSON events, cancel kills elastix too), and functions on a thread."""

import os
import shutil
import sys
import time

import pytest

from ElastixMonaiLabelLib.errors import CancelledError
from ElastixMonaiLabelLib.synthetic.evaluation import registration_error
from ElastixMonaiLabelLib.data.geometry import voxel_points
from ElastixMonaiLabelLib.data.images import read_volume
from ElastixMonaiLabelLib.runtime.jobs import ThreadJob, format_event, parse_event, registration_job
from ElastixMonaiLabelLib.registration.transforms import read_linear_transform


def test_event_lines_round_trip_and_ordinary_lines_stay_log():
    line = format_event("progress", fraction=0.25, message="t2 -> t1")
    assert parse_event(line) == {"event": "progress", "fraction": 0.25, "message": "t2 -> t1"}
    assert parse_event("Resolution: 0") is None
    assert parse_event("@elastix-monailabel {not json") is None


def test_registration_job_reports_progress_then_results(subject_3mm, tmp_path):
    job = registration_job(sys.executable, subject_3mm.path("t1"), [subject_3mm.path("t2"), subject_3mm.path("flair")],
                           tmp_path / "out", preset="brain-rigid", engine="itk")
    events = []
    job.wait(timeout=300, on_event=events.append)
    assert job.exit_code == 0 and job.error is None, [e.message for e in events if e.kind == "log"][-10:]
    fractions = [e.fraction for e in events if e.kind == "progress"]
    assert len(fractions) >= 4 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [r["modality"] for r in job.result] == ["t2", "flair"]
    # The result event names real files, and the transform it names is accurate.
    reference = read_volume(subject_3mm.path("t1"))
    brain = read_volume(subject_3mm.brain_mask)
    import itk

    points = voxel_points(reference, itk.array_view_from_image(brain) > 0)
    for result in job.result:
        files = result["files"]
        assert os.path.isfile(files["volume"]) and result["report"]["metric_improved"]
        error = registration_error(read_linear_transform(files["transform"]), subject_3mm.truth(result["modality"]), points)
        assert error["mean_mm"] < 1.0, (result["modality"], error)

def test_registration_job_error_names_the_file(tmp_path, subject_3mm):
    missing = tmp_path / "nowhere_t2.nii.gz"
    job = registration_job(sys.executable, subject_3mm.path("t1"), [missing], tmp_path / "out")
    job.wait(timeout=120)
    assert job.exit_code == 2
    assert str(missing) in job.error and not (tmp_path / "out").exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _elastix_below(pid: int) -> list[int]:
    from ElastixMonaiLabelLib.runtime.processes import _descendants

    return [child for child, _group in _descendants(pid) if open(f"/proc/{child}/comm").read().strip() == "elastix"]


def test_cancel_kills_the_job_and_its_elastix(make_subject, tmp_path):
    subject = make_subject(seed=4, spacing_mm=2.0)
    job = registration_job(sys.executable, subject.path("t1"), [subject.path("t2")], tmp_path / "out",
                           preset="atlas-deformable", engine="executable", elastix=shutil.which("elastix"),
                           transformix=shutil.which("transformix"))
    deadline = time.monotonic() + 300
    elastix: list[int] = []
    while time.monotonic() < deadline and not elastix:
        job.poll()
        elastix = _elastix_below(job.pid)
        time.sleep(0.1)
    assert elastix and not job.finished
    job.cancel()
    job.poll()
    assert job.cancelled and job.error == "cancelled by the user"
    time.sleep(0.5)
    # elastix runs in a process group of its own (the engine can stop it alone); cancel still reaches it.
    assert not _alive(job.pid) and not any(_alive(pid) for pid in elastix)
    assert not list((tmp_path / "out").glob("*_registered.nii.gz"))


def test_thread_job_reports_progress_result_and_errors():
    def work(report, cancel):
        for step in range(3):
            report((step + 1) / 3, f"step {step + 1}")
        return "answer"

    job = ThreadJob(work)
    assert job.wait(timeout=10) == "answer"
    assert [e.fraction for e in job.poll()] == [1 / 3, 2 / 3, 1.0] and job.finished and job.error is None

    def fails(report, cancel):
        raise ValueError("server said no")

    failing = ThreadJob(fails)
    with pytest.raises(ValueError):
        failing.wait(timeout=10)
    assert failing.error == "server said no"


def test_thread_job_cancel_reaches_the_function():
    def waits(report, cancel):
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    job = ThreadJob(waits)
    time.sleep(0.05)
    assert not job.finished
    job.cancel()
    with pytest.raises(CancelledError):
        job.wait(timeout=5)
    assert job.error == "cancelled by the user"
