"""What the panel shows, decided outside Qt: each job's progress in its own section (issue 19, defect 7), and
questions answered explicitly in testing mode, where Slicer's own confirmYesNoDisplay answers "no" to everything."""

import pytest

from ElastixMonaiLabelLib.runtime.jobs import JobEvent
from ElastixMonaiLabelSlicer import application
from conftest import headless_widget

BARS = ("registrationProgressBar", "segmentationProgressBar", "trainingProgressBar")


@pytest.mark.parametrize("role, bar", [("registration", "registrationProgressBar"), ("segmentation", "segmentationProgressBar"),
                                       ("next sample", "segmentationProgressBar"), ("submit", "segmentationProgressBar"),
                                       ("training", "trainingProgressBar"), ("sample", None)])
def test_each_job_shows_its_progress_in_its_own_section(eml, scene, role, bar):
    widget = headless_widget(eml)
    widget._showEvent(role, JobEvent("progress", "half way", 0.5))
    shown = [name for name in BARS if getattr(getattr(widget.ui, name), "visible", False)]
    assert shown == ([bar] if bar else [])
    if bar:
        assert (getattr(widget.ui, bar).value, getattr(widget.ui, bar).maximum) == (50, 100)
    assert widget.ui.statusLabel.text == "half way"
    widget._showEvent(role, JobEvent("progress", "waiting for the server", None))  # no fraction: Qt's busy indicator
    if bar:
        assert getattr(widget.ui, bar).maximum == 0 and getattr(widget.ui, bar).visible


def test_questions_have_an_explicit_answer_in_testing_mode(eml, scene):
    import slicer

    assert slicer.app.testingEnabled()
    # Slicer's own: testing mode returns True, compared with QMessageBox.Yes: "no", whatever the test means.
    assert slicer.util.confirmYesNoDisplay("Upload?") is False
    assert application.confirm("Upload?", "Upload images?", testing_answer=True) is True
    assert application.confirm("Upload?", "Upload images?", testing_answer=False) is False
