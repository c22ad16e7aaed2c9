"""Volume nodes <-> the core's VoxelVolume (a copy of the voxels and the world geometry), on Slicer's GUI thread."""

from __future__ import annotations

from typing import Any

import numpy as np

from ElastixMonaiLabelLib.data.voxels import VoxelVolume

MARK = "ElastixMonaiLabel.madeBy"  # attribute on nodes this module made (a marker, never a node ID)


def to_world(transform_node) -> np.ndarray:
    """The 4x4 to-world matrix of a linear transform node."""
    import slicer
    import vtk

    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def ijk_to_ras_under(volume_node, parent_node) -> np.ndarray:
    """IJK-to-RAS of the volume as it would be under ``parent_node`` (a linear transform node, or None: the world)."""
    import slicer
    import vtk

    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = slicer.util.arrayFromVTKMatrix(ijk_to_ras)
    if parent_node is None:
        return matrix
    if not parent_node.IsTransformToWorldLinear():
        raise ValueError(f"{volume_node.GetName()} is under a non-linear transform; harden it first")
    return to_world(parent_node) @ matrix


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """IJK-to-RAS of the volume in world coordinates: a linear parent transform is part of its geometry."""
    return ijk_to_ras_under(volume_node, volume_node.GetParentTransformNode())


def voxel_volume(volume_node, dtype=np.float32, ijk_to_ras: np.ndarray | None = None) -> VoxelVolume:
    """A copy of the voxels and the world geometry (or ``ijk_to_ras``): what background jobs work on (no node
    leaves the GUI thread)."""
    import slicer

    matrix = world_ijk_to_ras(volume_node) if ijk_to_ras is None else ijk_to_ras
    return VoxelVolume(slicer.util.arrayFromVolume(volume_node).astype(dtype), matrix)


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


def add_case_nodes(channels: dict[str, VoxelVolume], prefix: str, mark: str | None = None) -> dict[str, Any]:
    """One scalar volume node per channel, named ``<prefix>_<channel>``."""
    nodes = {name: add_volume_node(volume, f"{prefix}_{name}") for name, volume in channels.items()}
    for node in nodes.values():
        if mark:
            node.SetAttribute(MARK, mark)
    return nodes
