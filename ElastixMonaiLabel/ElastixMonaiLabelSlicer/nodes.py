"""MRML nodes <-> the core's arrays, for ElastixMonaiLabel.py only (the one place besides it that touches Slicer).

Everything here runs on Slicer's GUI thread and is kept to node bookkeeping: copying voxels
and geometry out of and into volume nodes, turning registration results into volume and
transform nodes, and label maps into segments and back with one call of Slicer's
Segmentations logic each (never one call per segment). The computations are the rest of the
ElastixMonaiLabelLib's, tested outside Slicer; this file cannot be (3D Slicer does not run here), so
``slicer`` and ``vtk`` are imported inside the functions and nothing in ElastixMonaiLabelLib
imports this package (Testing/slicer/test_extension_layout.py checks both).
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import numpy as np

from ElastixMonaiLabelLib.data.geometry import from_parent_under, lps_to_ras_transform
from ElastixMonaiLabelLib.module_support.segments import SegmentSpec, label_values_for_segments, segments_from_params
from ElastixMonaiLabelLib.data.voxels import VoxelVolume

MARK = "ElastixMonaiLabel.madeBy"  # attribute on nodes this module made (a marker, never a node ID)
SOURCE_ROLE = "ElastixMonaiLabelSource"  # node reference: registered volume -> the moving volume it came from
LABEL_TABLE = "ElastixMonaiLabel.labelTable"  # the server's label table on a segmentation node (JSON)


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """IJK-to-RAS of the volume in world coordinates: a linear parent transform is part of its geometry."""
    import slicer
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = slicer.util.arrayFromVTKMatrix(ijk_to_ras)
    parent = volume_node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise ValueError(f"{volume_node.GetName()} is under a non-linear transform; harden it first")
        matrix = to_world(parent) @ matrix
    return matrix


def to_world(transform_node) -> np.ndarray:
    import slicer
    import vtk

    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def voxel_volume(volume_node, dtype=np.float32) -> VoxelVolume:
    """A copy of the voxels and the world geometry: what background jobs work on (no node leaves the GUI thread)."""
    import slicer

    return VoxelVolume(slicer.util.arrayFromVolume(volume_node).astype(dtype), world_ijk_to_ras(volume_node))


def update_volume_node(volume_node, volume: VoxelVolume) -> None:
    import slicer

    slicer.util.updateVolumeFromArray(volume_node, np.asarray(volume.array))
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(volume.ijk_to_ras))


def add_volume_node(volume: VoxelVolume, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    import slicer

    node = slicer.mrmlScene.AddNewNodeByClass(class_name, slicer.mrmlScene.GenerateUniqueName(name))
    update_volume_node(node, volume)
    node.CreateDefaultDisplayNodes()
    return node


def registered_volume_of(registered_nodes, volume_node):
    """``volume_node``'s registered copy among ``registered_nodes`` (by node reference), or None; the channels of
    a case fetched from the server are their own (co-registered already)."""
    if volume_node.GetAttribute(MARK) == "on reference grid":
        return volume_node
    return next((v for v in registered_nodes if v and v.GetNodeReference(SOURCE_ROLE) is volume_node), None)


def own_transform_of(volume_node):
    """The registration transform this module placed ``volume_node`` under, or None."""
    import slicer

    parent = volume_node.GetParentTransformNode()
    role = slicer.vtkMRMLTransformNode.GetMovingNodeReferenceRole()
    if parent is not None and parent.GetAttribute(MARK) and parent.GetNodeReference(role) is volume_node:
        return parent
    return None


def load_registration(outcome: Any, reference_node, moving_node, registered_node=None, place_under: bool = True):
    """``<moving>_registered`` volume and ``<moving>_to_reference`` transform (from an array_registration outcome),
    linked to the moving volume by node references. A linear transform can hold the moving volume; it is put
    under the parent transform the volume had, which is kept (geometry.from_parent_under)."""
    import slicer

    name = moving_node.GetName()
    if registered_node is None or registered_node is moving_node:
        registered_node = add_volume_node(outcome.registered, name + "_registered")
    else:
        update_volume_node(registered_node, outcome.registered)
    registered_node.SetNodeReferenceID(SOURCE_ROLE, moving_node.GetID())
    registered_node.SetAttribute(MARK, "registered volume")
    if moving_node.GetDisplayNode() and moving_node.GetDisplayNode().GetColorNodeID():
        registered_node.GetDisplayNode().SetAndObserveColorNodeID(moving_node.GetDisplayNode().GetColorNodeID())
    moving_role = slicer.vtkMRMLTransformNode.GetMovingNodeReferenceRole()
    for old in slicer.util.getNodesByClass("vtkMRMLTransformNode"):
        if old.GetAttribute(MARK) and old.GetNodeReference(moving_role) is moving_node:
            slicer.mrmlScene.RemoveNode(old)
    parent = moving_node.GetParentTransformNode()
    if outcome.matrix_lps is not None:
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name + "_to_reference")
        if parent is not None:
            transform.SetAndObserveTransformNodeID(parent.GetID())
        # The core's matrix maps reference points to moving points (LPS): Slicer's "transform from parent".
        from_parent = from_parent_under(lps_to_ras_transform(outcome.matrix_lps), to_world(parent) if parent else None)
        transform.SetMatrixTransformFromParent(slicer.util.vtkMatrixFromArray(from_parent))
    else:  # an ITK displacement field (Slicer converts LPS), held in memory by the job: on disk only while read
        with tempfile.TemporaryDirectory(prefix="ElastixMonaiLabel-field-") as folder:
            transform = slicer.util.loadTransform(str(outcome.field.write(folder)))
        transform.SetName(name + "_to_reference")
    transform.SetAttribute(MARK, "registration")
    transform.SetNodeReferenceID(moving_role, moving_node.GetID())
    transform.SetNodeReferenceID(slicer.vtkMRMLTransformNode.GetFixedNodeReferenceRole(), reference_node.GetID())
    if place_under and outcome.matrix_lps is not None:
        moving_node.SetAndObserveTransformNodeID(transform.GetID())
    return registered_node


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
    """Label map -> segments named and coloured from the server's label table, in one import; the segment count."""
    import slicer

    present = set(np.unique(label.array).tolist()) - {0}
    specs = [s for s in segments_from_params(params, present) if s.value in present]
    color_table, labelmap = _label_nodes(specs, segmentation_node.GetName())
    try:
        update_volume_node(labelmap, label)
        segmentation_node.GetSegmentation().RemoveAllSegments()
        segmentation_node.CreateDefaultDisplayNodes()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
        if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
            raise RuntimeError(f"the label map could not be imported into {segmentation_node.GetName()}")
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)
        slicer.mrmlScene.RemoveNode(color_table)
    segmentation_node.SetAttribute(LABEL_TABLE, json.dumps([[s.value, s.name, list(s.color)] for s in specs]))
    return len(specs)


def label_volume_from_segmentation(segmentation_node, reference_node) -> VoxelVolume:
    """The segments as one label map on the reference grid, values from the label table by segment name
    (unknown names are refused, by name), in one export."""
    import slicer
    import vtk

    segmentation = segmentation_node.GetSegmentation()
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
        if not slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, reference_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, color_table):
            raise RuntimeError(f"the segments could not be exported from {segmentation_node.GetName()}")
        # The export gives the labelmap the reference's own IJK-to-RAS and puts it under the reference's parent
        # transform (vtkSlicerSegmentationsModuleLogic::ExportSegmentsToLabelmapNode, Slicer 5.10 and 5.12), so
        # voxel_volume reads the reference's world grid: the grid the case was uploaded on, transform or not.
        return voxel_volume(labelmap, np.uint8)
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)
        slicer.mrmlScene.RemoveNode(color_table)


def add_case_nodes(channels: dict[str, VoxelVolume], prefix: str, mark: str | None = None) -> dict[str, Any]:
    """One scalar volume node per channel, named ``<prefix>_<channel>``."""
    nodes = {name: add_volume_node(volume, f"{prefix}_{name}") for name, volume in channels.items()}
    for node in nodes.values():
        if mark:
            node.SetAttribute(MARK, mark)
    return nodes


def show_comparison(reference_node, other_node, mode: str, opacity: float) -> None:
    """Reference under the other volume (``fade``, at ``opacity``), or a ``checkerboard`` of both (same grid)."""
    import slicer

    from ElastixMonaiLabelLib.workflows.figures import checkerboard

    if mode != "checkerboard":
        slicer.util.setSliceViewerLayers(background=reference_node, foreground=other_node, foregroundOpacity=opacity, fit=False)
        return
    board = checkerboard(slicer.util.arrayFromVolume(reference_node), slicer.util.arrayFromVolume(other_node))
    name = other_node.GetName() + "_checkerboard"
    board_node = slicer.mrmlScene.GetFirstNodeByName(name) or slicer.modules.volumes.logic().CloneVolume(reference_node, name)
    slicer.util.updateVolumeFromArray(board_node, board)
    slicer.util.setSliceViewerLayers(background=board_node, foreground=None, fit=False)


def slicer_elastix_executables() -> dict[str, Any] | None:
    """SlicerElastix's elastix, transformix and their environment; None when the extension is missing or its
    ElastixLogic finds no executables (getElastixBinDir raises ValueError('Elastix not found'))."""
    import logging
    import os

    try:
        import Elastix

        logic = Elastix.ElastixLogic()
        folder = logic.getElastixBinDir()
        return {"elastix": os.path.join(folder, logic.elastixFilename),
                "transformix": os.path.join(folder, logic.transformixFilename), "env": logic.getElastixEnv()}
    except (ImportError, ValueError) as error:
        logging.info(f"ElastixMonaiLabel: SlicerElastix's executables are not available ({error})")
        return None


def wait_for(job: Any, timeout: float = 1800.0) -> Any:
    """Block until ``job`` ends (scripts, self-test), processing Qt events meanwhile. Each wait is Qt's own
    (WaitForMoreEvents, woken at least every 100 ms by a timer), not a sleep; the GUI itself polls from a QTimer."""
    import logging
    import time

    import qt
    import slicer

    timer, deadline = qt.QTimer(), time.monotonic() + timeout
    timer.start(100)
    try:
        while not job.finished:
            for event in job.poll():
                if event.message:
                    logging.info(event.message)
            if time.monotonic() > deadline:
                job.cancel()
                raise TimeoutError(f"still running after {timeout:g} s; cancelled")
            slicer.app.processEvents(qt.QEventLoop.WaitForMoreEvents)
    finally:
        timer.stop()
    return job


def ensure_itk_elastix(requirements_path: str) -> None:
    """itk-elastix (engine itk) in Slicer's Python, installed only after the user agrees; never in --testing mode.
    Slicer 5.12's slicer.packaging.pip_ensure asks and installs with progress; 5.10 has no slicer.packaging, so there
    the user is asked here and slicer.util.pip_install installs."""
    import slicer
    from slicer.i18n import tr as _

    from ElastixMonaiLabelLib.module_support.python_packages import missing_requirements, read_requirements

    missing = missing_requirements(read_requirements(requirements_path))
    if not missing:
        return
    if slicer.app.testingEnabled():
        raise RuntimeError(_("The itk engine needs itk-elastix, which is not installed (nothing is installed in "
                             "testing mode); use the executable engine (SlicerElastix)."))
    try:
        import slicer.packaging
    except ImportError:
        if not slicer.util.confirmOkCancelDisplay(_("The itk engine needs these Python packages:\n{packages}\n\nInstall "
                                                    "them into Slicer's Python now?").format(packages="\n".join(missing))):
            raise RuntimeError(_("Installing itk-elastix was declined; choose the executable engine (SlicerElastix)."))
        slicer.util.pip_install(" ".join(missing))
    else:
        slicer.packaging.pip_ensure(slicer.packaging.load_requirements(requirements_path), requester="ElastixMonaiLabel")
