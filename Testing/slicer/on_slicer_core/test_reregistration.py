"""Defect 1 (issue 19): a re-registration that is cancelled or fails leaves the previous alignment exactly as it was:
each moving volume under its registration transform, the transforms and registered volumes unchanged."""

import hashlib

import numpy as np
import pytest

from ElastixMonaiLabelSlicer import application, volumes


def placement(scene):
    """Every volume's parent transform and every transform's matrix and parent, by node name."""
    import slicer

    volumes = {v.GetName(): (v.GetTransformNodeID(), hashlib.sha256(slicer.util.arrayFromVolume(v)).hexdigest()[:12])
               for v in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")}
    transforms = {}
    for t in slicer.util.getNodesByClass("vtkMRMLTransformNode"):
        matrix = slicer.util.arrayFromTransformMatrix(t) if t.IsLinear() else None
        transforms[t.GetName()] = (t.GetID(), t.GetTransformNodeID(), None if matrix is None else matrix.tolist())
    return volumes, transforms


@pytest.fixture(scope="module")
def registered(module_at, slicer_folder):
    """The sample subject registered once (t2, and flair under a parent transform of the user's)."""
    import slicer

    eml = module_at("v5.12.3")
    slicer.mrmlScene = slicer.vtkMRMLScene()
    logic = eml.ElastixMonaiLabelLogic()
    node = logic.getParameterNode()
    node.engine = "executable"
    job, onFinished = logic.startSampleSubject(node)
    nodes = onFinished(application.wait_for(job, 300))
    parent = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "user's parent")
    parent.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(np.array(
        [[1, 0, 0, 4], [0, 1, 0, -3], [0, 0, 1, 2], [0, 0, 0, 1.0]])))
    nodes["flair"].SetAndObserveTransformNodeID(parent.GetID())
    job, onFinished = logic.startRegistration(node)
    onFinished(application.wait_for(job, 1800))
    assert nodes["t2"].GetParentTransformNode().GetName() == "Sample_t2_to_reference"
    return eml, logic, node, nodes


def wait_until_elastix_runs(job):
    import time

    deadline = time.monotonic() + 120
    while not job.finished and time.monotonic() < deadline:
        if any(event.kind == "log" for event in job.poll()):
            return  # elastix has started once it logs
        time.sleep(0.05)


def test_a_cancelled_re_registration_leaves_the_previous_alignment(registered):
    eml, logic, node, nodes = registered
    import slicer

    before = placement(slicer.mrmlScene)
    job, onFinished = logic.startRegistration(node)
    wait_until_elastix_runs(job)
    job.cancel()
    application.wait_for(job, 300)
    assert job.cancelled and job.error == "cancelled by the user"
    with pytest.raises(Exception, match="cancelled"):
        onFinished(job)
    assert placement(slicer.mrmlScene) == before
    assert nodes["flair"].GetParentTransformNode().GetParentTransformNode().GetName() == "user's parent"


def test_a_failed_re_registration_leaves_the_previous_alignment(registered):
    eml, logic, node, nodes = registered
    import slicer

    from ElastixMonaiLabelLib.data.voxels import VoxelVolume

    reference = volumes.voxel_volume(nodes["t1"], np.uint8)
    empty = volumes.add_volume_node(VoxelVolume(np.zeros_like(reference.array), reference.ijk_to_ras), "empty mask",
                                        "vtkMRMLLabelMapVolumeNode")
    node.brainMask = empty
    try:
        before = placement(slicer.mrmlScene)
        job, onFinished = logic.startRegistration(node)
        application.wait_for(job, 300)
        assert "brain mask" in job.error and "empty" in job.error
        with pytest.raises(Exception, match="empty"):
            onFinished(job)
        assert placement(slicer.mrmlScene) == before
    finally:
        node.brainMask = None
