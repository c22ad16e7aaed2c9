"""Label maps <-> segments, each with one call of Slicer's Segmentations logic (never one call per segment), and
whether a segmentation holds edits the server has not got (so that nothing wipes them)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.module_support.segments import SegmentSpec, label_values_for_segments, segments_from_params
from ElastixMonaiLabelLib.data.voxels import VoxelVolume

from .volumes import update_volume_node, voxel_volume

LABEL_TABLE = "ElastixMonaiLabel.labelTable"  # the server's label table on a segmentation node (JSON)
SAVED_STATE = "ElastixMonaiLabel.savedState"  # content_state when the segments last came from or went to the server


def _label_nodes(specs: list[SegmentSpec], name: str):
    """A temporary color table (label value -> segment name and colour) and a labelmap node that shows it."""
    import slicer

    color_table = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", name + "_labels")
    color_table.SetTypeToUser()
    color_table.SetNumberOfColors(max([s.value for s in specs], default=0) + 1)
    color_table.SetColor(0, "Background", 0.0, 0.0, 0.0, 0.0)
    for spec in specs:
        color_table.SetColor(spec.value, spec.name, *spec.color, 1.0)
    labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name + "_labelmap")
    labelmap.CreateDefaultDisplayNodes()
    labelmap.GetDisplayNode().SetAndObserveColorNodeID(color_table.GetID())
    return color_table, labelmap


def load_segmentation(label: VoxelVolume, params: dict | None, segmentation_node, reference_node) -> int:
    """Label map -> segments named and coloured from the server's label table, in one import, replacing the node's
    segments (the Logic never passes a node that holds edits); the segment count."""
    import slicer

    present = set(np.unique(label.array).tolist()) - {0}
    specs = [s for s in segments_from_params(params, present) if s.value in present]
    color_table, labelmap = _label_nodes(specs, segmentation_node.GetName())
    try:
        update_volume_node(labelmap, label)
        segmentation_node.GetSegmentation().RemoveAllSegments()
        segmentation_node.CreateDefaultDisplayNodes()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
            raise RuntimeError(f"the label map could not be imported into {segmentation_node.GetName()}")
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)
        slicer.mrmlScene.RemoveNode(color_table)
    segmentation_node.SetAttribute(LABEL_TABLE, json.dumps([[s.value, s.name, list(s.color)] for s in specs]))
    mark_saved(segmentation_node)
    return len(specs)


def label_volume_from_segmentation(segmentation_node, reference_node) -> VoxelVolume:
    """The segments as one label map on the reference grid, values from the label table by segment name
    (unknown names are refused, by name), in one export."""
    import slicer
    import vtk

    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise InputError(segmentation_node.GetName(), "has no segments: nothing to send (segment a case or add segments)")
    segment_ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    names = [segmentation.GetSegment(i).GetName() for i in segment_ids]
    stored = segmentation_node.GetAttribute(LABEL_TABLE)
    table = [SegmentSpec(v, n, tuple(c)) for v, n, c in json.loads(stored)] if stored else None
    values = label_values_for_segments(names, table)
    specs = [SegmentSpec(values[n], n, tuple(segmentation.GetSegment(i).GetColor())) for i, n in zip(segment_ids, names)]
    color_table, labelmap = _label_nodes(specs, segmentation_node.GetName() + "_export")
    try:
        ids = vtk.vtkStringArray()
        for segment_id in segment_ids:
            ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, reference_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, color_table):
            raise RuntimeError(f"the segments could not be exported from {segmentation_node.GetName()}")
        # The export gives the labelmap the reference's own IJK-to-RAS and puts it under the reference's parent
        # transform (vtkSlicerSegmentationsModuleLogic::ExportSegmentsToLabelmapNode, Slicer 5.10 and 5.12), so
        # voxel_volume reads the reference's world grid: the grid the case was uploaded on, transform or not.
        return voxel_volume(labelmap, np.uint8)
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)
        slicer.mrmlScene.RemoveNode(color_table)


def content_state(segmentation_node) -> str | None:
    """A digest of what a user edits in a segmentation: each segment's id, name, colour, layer and label value, and
    each binary-labelmap layer's voxels and geometry. None for a segmentation kept as something else than binary
    labelmaps (closed surfaces): its content is not compared."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    segmentation = segmentation_node.GetSegmentation()
    labelmap = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    if segmentation.GetNumberOfSegments() and segmentation.GetSourceRepresentationName() != labelmap:
        return None
    digest = hashlib.sha256()
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        digest.update(json.dumps([segment_id, segment.GetName(), list(segment.GetColor()),
                                  segmentation.GetLayerIndex(segment_id), segment.GetLabelValue()]).encode())
    for layer in range(segmentation.GetNumberOfLayers()):
        image = segmentation.GetLayerDataObject(layer)
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        digest.update(json.dumps([list(image.GetExtent()), slicer.util.arrayFromVTKMatrix(matrix).tolist()]).encode())
        scalars = image.GetPointData().GetScalars()
        if scalars is not None:
            digest.update(np.ascontiguousarray(numpy_support.vtk_to_numpy(scalars)).tobytes())
    return digest.hexdigest()


def mark_saved(segmentation_node, state: str | None = None) -> None:
    """Remember the segmentation's content as the server has it: ``state`` (content_state when it was sent), else its
    content now (just loaded from the server)."""
    segmentation_node.SetAttribute(SAVED_STATE, state or content_state(segmentation_node) or "")


def node_for_result(segmentation_node, name: str):
    """The segmentation node a server's result may replace the segments of: ``segmentation_node`` unless it holds
    edits (or is None); else a new node named ``name`` (made unique), the edited one left as it is."""
    import slicer

    if segmentation_node is not None and not holds_edits(segmentation_node):
        return segmentation_node
    return slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", slicer.mrmlScene.GenerateUniqueName(name))


def holds_edits(segmentation_node) -> bool:
    """Whether replacing the segments would lose work: the node has segments whose content differs from what was
    last loaded from or submitted to the server (segments painted from scratch count as edits)."""
    if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        return False
    state = content_state(segmentation_node)
    return state is None or state != segmentation_node.GetAttribute(SAVED_STATE)
