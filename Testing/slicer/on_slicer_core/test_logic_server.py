"""The Logic's server methods on real MRML against a real MONAI Label server (this project's app, 127.0.0.1, run from
.venv-server): segment, edit, segment again (defect 4: edits are never wiped), submit, next case, and a training that
cannot run says why (defect 6)."""

import time

import pytest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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
    node.referenceVolume = eml.slicer_nodes.add_case_nodes({"t1": quick.volumes["t1"]}, "quick")["t1"]
    node.serverUrl, node.model = server.url, "atlas_registration"
    logic.uploadConsent().grant(server.url)
    return logic, node


def segment(eml, logic, node):
    job, onFinished, names, missing = logic.startSegmentation(node)
    return onFinished(eml.slicer_nodes.wait_for(job, 900))


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
    assert node.segmentation is not first and "Left-Hippocampus" in segment_names(node.segmentation)


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
