"""Registration results -> nodes: each moving volume's registered copy and its transform to the reference, linked to
the moving volume by node references. Nothing here moves a volume before a result is there to place it: a
registration that is cancelled or fails leaves every volume, transform and registered copy as it was."""

from __future__ import annotations

import tempfile
from typing import Any

from ElastixMonaiLabelLib.data.geometry import from_parent_under, lps_to_ras_transform
from ElastixMonaiLabelLib.data.voxels import VoxelVolume

from .volumes import MARK, add_volume_node, ijk_to_ras_under, to_world, update_volume_node, voxel_volume

SOURCE_ROLE = "ElastixMonaiLabelSource"  # node reference: registered volume -> the moving volume it came from


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


def original_parent_of(volume_node):
    """The transform ``volume_node`` was under before this module placed it (None: the world): where a
    re-registration starts from, and where its new transform goes."""
    own = own_transform_of(volume_node)
    return own.GetParentTransformNode() if own is not None else volume_node.GetParentTransformNode()


def moving_voxels(volume_node) -> VoxelVolume:
    """The moving volume's voxels in its original position (under its original parent, not under this module's
    previous registration), read without moving the node."""
    return voxel_volume(volume_node, ijk_to_ras=ijk_to_ras_under(volume_node, original_parent_of(volume_node)))


def add_displacement_field(field: Any, name: str):
    """A grid transform node holding ``field`` (an ITK displacement field, LPS: what elastix's transformix writes),
    read by Slicer's transform storage node (LPS -> RAS) from a folder that is removed at once. The node then gets a
    storage node of its own that names no file yet (Slicer's Save Data gives it ``<name>.h5`` in the folder the user
    saves to) and is marked modified since read, so that saving the scene writes it."""
    import slicer

    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLGridTransformNode", slicer.mrmlScene.GenerateUniqueName(name))
    reader = slicer.vtkMRMLTransformStorageNode()
    with tempfile.TemporaryDirectory(prefix="ElastixMonaiLabel-field-") as folder:
        reader.SetFileName(str(field.write(folder)))
        if not reader.ReadData(transform):
            slicer.mrmlScene.RemoveNode(transform)
            raise RuntimeError(f"Slicer could not read the displacement field of {name}")
    transform.AddDefaultStorageNode()
    transform.StorableModified()
    return transform


def _remove_previous_transforms(moving_node) -> None:
    import slicer

    moving_role = slicer.vtkMRMLTransformNode.GetMovingNodeReferenceRole()
    for old in slicer.util.getNodesByClass("vtkMRMLTransformNode"):
        if old.GetAttribute(MARK) and old.GetNodeReference(moving_role) is moving_node:
            slicer.mrmlScene.RemoveNode(old)


def load_registration(outcome: Any, reference_node, moving_node, registered_node=None, place_under: bool = True):
    """``<moving>_registered`` volume and ``<moving>_to_reference`` transform (from an array_registration outcome),
    linked to the moving volume by node references; the transform this module made for it before is replaced. A
    linear transform can hold the moving volume; it is put under the parent transform the volume had before this
    module placed it, which is kept (geometry.from_parent_under)."""
    import slicer

    name, parent = moving_node.GetName(), original_parent_of(moving_node)
    if registered_node is None or registered_node is moving_node:
        registered_node = add_volume_node(outcome.registered, name + "_registered")
    else:
        update_volume_node(registered_node, outcome.registered)
    registered_node.SetNodeReferenceID(SOURCE_ROLE, moving_node.GetID())
    registered_node.SetAttribute(MARK, "registered volume")
    if moving_node.GetDisplayNode() and moving_node.GetDisplayNode().GetColorNodeID():
        registered_node.GetDisplayNode().SetAndObserveColorNodeID(moving_node.GetDisplayNode().GetColorNodeID())
    moving_node.SetAndObserveTransformNodeID(parent.GetID() if parent is not None else None)
    _remove_previous_transforms(moving_node)
    if outcome.matrix_lps is not None:
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name + "_to_reference")
        if parent is not None:
            transform.SetAndObserveTransformNodeID(parent.GetID())
        # The core's matrix maps reference points to moving points (LPS): Slicer's "transform from parent".
        from_parent = from_parent_under(lps_to_ras_transform(outcome.matrix_lps), to_world(parent) if parent else None)
        transform.SetMatrixTransformFromParent(slicer.util.vtkMatrixFromArray(from_parent))
    else:
        transform = add_displacement_field(outcome.field, name + "_to_reference")
    transform.SetAttribute(MARK, "registration")
    transform.SetNodeReferenceID(slicer.vtkMRMLTransformNode.GetMovingNodeReferenceRole(), moving_node.GetID())
    transform.SetNodeReferenceID(slicer.vtkMRMLTransformNode.GetFixedNodeReferenceRole(), reference_node.GetID())
    if place_under and outcome.matrix_lps is not None:
        moving_node.SetAndObserveTransformNodeID(transform.GetID())
    return registered_node
