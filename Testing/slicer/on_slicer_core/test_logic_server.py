"""The Logic's server methods on real MRML against a real MONAI Label server (this project's app, 127.0.0.1, run from
.venv-server): segment, edit, segment again (defect 4: edits are never wiped), submit, next case, and a training that
cannot run says why (defect 6)."""

import logging
import time

import pytest

from ElastixMonaiLabelSlicer import application, segmentations, volumes


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for this file, its datastore empty at first. The tests run in file order: labels are submitted only
    after the training test, which needs fewer than 2 labelled images to show its reason."""
    from ElastixMonaiLabelLib.client.local_server import LocalServer

    studies = tmp_path_factory.mktemp("studies")
    local = LocalServer(studies, conf={"atlases": "3", "atlas_spacing": "3", "cache": str(tmp_path_factory.mktemp("cache"))})
    client = local.start()
    yield client
    local.stop()


def segment_names(segmentation_node):
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


@pytest.fixture
def case(eml, scene, quick, server):
    """The Logic and its parameter node with the quick subject's T1 as the reference, uploads allowed to ``server``."""
    logic = eml.ElastixMonaiLabelLogic()
    node = logic.getParameterNode()
    node.referenceVolume = volumes.add_case_nodes({"t1": quick.volumes["t1"]}, "quick")["t1"]
    node.serverUrl, node.model = server.url, "atlas_registration"
    logic.uploadConsent().grant(server.url)
    return logic, node


def segment(eml, logic, node):
    job, onFinished, names, missing = logic.startSegmentation(node)
    return onFinished(application.wait_for(job, 900))


def test_segment_again_never_wipes_edits(eml, case):
    logic, node = case
    assert segment(eml, logic, node) > 20
    first = node.segmentation
    # The user's edit in Segment Editor: a structure deleted.
    segmentation = first.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("Left-Hippocampus"))
    edited = segment_names(first)
    assert segment(eml, logic, node) > 20
    assert segment_names(first) == edited  # left as it is
    second = node.segmentation
    assert second is not first and "Left-Hippocampus" in segment_names(second)
    # Edited while the server works: still kept (the Logic decides when the result arrives).
    job, onFinished, _names, _missing = logic.startSegmentation(node)
    second.GetSegmentation().RemoveSegment(second.GetSegmentation().GetSegmentIdBySegmentName("Brain-Stem"))
    assert onFinished(application.wait_for(job, 900)) > 20
    assert "Brain-Stem" not in segment_names(second) and node.segmentation not in (first, second)


def test_a_training_that_cannot_run_says_why(eml, case):
    from ElastixMonaiLabelLib.module_support.server_work import TrainingRun
    from ElastixMonaiLabelLib.runtime.jobs import JobBoard

    logic, node = case
    board, heard = JobBoard(), []
    run = TrainingRun(logic.client(node.serverUrl), "segmentation", 1)
    run.start(board, lambda fraction, message: heard.append(message))
    deadline = time.monotonic() + 300
    while not board.idle and time.monotonic() < deadline:
        for _role, job, on_done in board.poll()[1]:
            on_done(job)
        time.sleep(0.2)
    assert board.idle and not run.running
    assert heard[-1].startswith("training error") and "needs at least 2 labelled images" in heard[-1], heard


def test_segment_submit_and_fetch_the_next_case(eml, case):
    from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES

    logic, node = case
    assert segment(eml, logic, node) > 20
    segmentation = node.segmentation
    colours = {s.name: tuple(c / 255 for c in s.color) for s in SYNTHSEG_STRUCTURES}
    segments = segmentation.GetSegmentation()
    for segment_ in (segments.GetNthSegment(i) for i in range(segments.GetNumberOfSegments())):
        assert segment_.GetColor() == pytest.approx(colours[segment_.GetName()], abs=1e-3)
    segments.RemoveSegment(segments.GetSegmentIdBySegmentName("Left-Hippocampus"))  # the correction
    assert segmentations.holds_edits(segmentation)
    job, onFinished = logic.startSubmit(node)
    assert onFinished(application.wait_for(job, 600)) == node.imageId
    assert "final" in logic.client(node.serverUrl).datastore()["objects"][node.imageId]["labels"]
    assert not segmentations.holds_edits(segmentation)  # submitted: Segment may replace it now
    assert segment(eml, logic, node) > 20 and node.segmentation is segmentation
    node.strategy = "first"
    job, onFinished = logic.startNextSample(node)
    channels = onFinished(application.wait_for(job, 600))
    assert channels and node.imageId and node.referenceVolume.GetName() == f"{node.imageId}_{channels[0]}"
    assert node.referenceVolume.GetAttribute(volumes.MARK) == "on reference grid"


def test_the_module_self_test_runs_headless_with_its_server_round_trip(eml, scene, server, monkeypatch, caplog):
    """The extension's CTest (ElastixMonaiLabelTest) as Slicer runs it: the module class made with a parent, its
    runTest registered in slicer.selfTests; co-registration with SlicerElastix's elastix, then (with
    ELASTIXMONAILABEL_TEST_SERVER) segment and submit."""
    from types import SimpleNamespace

    import slicer

    monkeypatch.setenv("ELASTIXMONAILABEL_TEST_SERVER", server.url)
    parent = SimpleNamespace(path=eml.__file__)
    eml.ElastixMonaiLabel(parent)
    assert parent.title == "Elastix MONAI Label" and parent.dependencies == []
    assert ("startupCompleted()", eml.registerSampleData) in slicer.app.connections
    with caplog.at_level(logging.INFO):
        slicer.selfTests["ElastixMonaiLabel"]()
    said = [r.getMessage() for r in caplog.records]
    assert sum(" mm" in m and "NMI" in m for m in said) == 4  # t2 and flair, in both parts
    assert not [m for m in said if m.startswith("Skipped")]
