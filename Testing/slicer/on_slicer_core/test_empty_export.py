"""Defect 5 (issue 19): submitting a segmentation without segments says so, before anything is sent."""

import pytest

from ElastixMonaiLabelSlicer import volumes


def test_submitting_an_empty_segmentation_says_it_is_empty(eml, scene, quick):
    from ElastixMonaiLabelLib.errors import InputError

    logic = eml.ElastixMonaiLabelLogic()
    node = logic.getParameterNode()
    node.referenceVolume = volumes.add_case_nodes({"t1": quick.volumes["t1"]}, "case")["t1"]
    node.segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "nothing yet")
    node.imageId, node.serverUrl = "case-1", "http://127.0.0.1:9"  # nothing listens there: nothing may be sent
    with pytest.raises(InputError, match="nothing yet.*has no segments"):
        logic.startSubmit(node)
