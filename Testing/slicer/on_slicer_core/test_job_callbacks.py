"""Defect 2 (issue 19): a failing job callback is shown and the other jobs finished in the same poll still get theirs;
and a cancelled job is reported as cancelled, not as a failure. Runs the widget's own _pollJobs (conftest.headless_widget)
with Slicer's real slicer.util (testing mode: its error display logs the message)."""

import logging
import time

from conftest import headless_widget


def finished_job(function, name):
    from ElastixMonaiLabelLib.runtime.jobs import ThreadJob

    job = ThreadJob(lambda report, cancel: function(), name)
    try:
        job.wait(60)
    except Exception:  # noqa: BLE001 - a failing function's error stays on the job (job.error)
        pass
    return job


def test_one_failing_callback_is_shown_and_the_others_still_run(eml, scene, caplog):
    widget = headless_widget(eml)
    delivered = []

    def fails(job):
        raise RuntimeError("the label map could not be imported")

    widget._jobs.start("segmentation", finished_job(lambda: 1, "segmentation"), fails)
    widget._jobs.start("sample", finished_job(lambda: 2, "sample"), lambda job: delivered.append(job.result))
    with caplog.at_level(logging.ERROR):
        widget._pollJobs()
    assert delivered == [2]
    assert any("the label map could not be imported" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert widget._jobs.idle


def test_a_cancelled_job_is_reported_as_cancelled_not_failed(eml, scene, caplog):
    from ElastixMonaiLabelLib.runtime.jobs import ThreadJob

    widget = headless_widget(eml)

    def work(report, cancel):
        while True:  # until the user cancels (the registration's elastix runs are cancelled the same way)
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    job = ThreadJob(work, "registration")
    widget._jobs.start("registration", job, lambda finished: widget.logic.result(finished))
    widget._jobs.cancel("registration")
    with caplog.at_level(logging.INFO):
        while not widget._jobs.idle:
            widget._pollJobs()
            time.sleep(0.01)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert widget.ui.statusLabel.text == "Registration cancelled."
