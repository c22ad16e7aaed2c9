"""Defect 3 (issue 19): a displacement-field registration lives in the scene with a storage node that saves it."""

import numpy as np
import pytest

from ElastixMonaiLabelSlicer import registration_nodes, volumes
from conftest import saved_and_reloaded


def itk_displacement_field(folder, ijk_to_lps, shape, displacement_lps):
    """A constant displacement field (LPS, as elastix's transformix writes it: MetaImage) on an oblique grid."""
    import itk

    array = np.broadcast_to(np.asarray(displacement_lps, np.float32), (*shape[::-1], 3)).copy()
    image = itk.image_from_array(array, is_vector=True)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(ijk_to_lps[:3, 3].tolist())
    image.SetDirection(itk.matrix_from_array(ijk_to_lps[:3, :3] / spacing))
    path = folder / "deformationField.mhd"
    itk.imwrite(image, str(path))
    return path


@pytest.fixture
def field_outcome(eml, scene, quick, tmp_path):
    from ElastixMonaiLabelLib.data.geometry import lps_to_ras_transform
    from ElastixMonaiLabelLib.registration.voxel_arrays import DisplacementField, RegistrationOutcome

    reference = quick.volumes["t1"]
    ijk_to_lps = lps_to_ras_transform(np.asarray(reference.ijk_to_ras))  # LPS <-> RAS: the same flip both ways
    path = itk_displacement_field(tmp_path, ijk_to_lps, reference.array.shape, (1.0, 2.0, 3.0))
    return RegistrationOutcome("t2", quick.volumes["t2"], {}, field=DisplacementField.read(path))


def test_a_displacement_field_is_read_in_ras_and_kept_with_a_storage_node(eml, scene, quick, field_outcome, tmp_path):
    import slicer

    nodes = volumes.add_case_nodes({"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]}, "case")
    registration_nodes.load_registration(field_outcome, nodes["t1"], nodes["t2"])
    transform = scene.GetFirstNodeByName("case_t2_to_reference")
    assert transform.IsA("vtkMRMLGridTransformNode") and not transform.IsLinear()
    centre = volumes.world_ijk_to_ras(nodes["t1"]) @ [35, 27, 29, 1.0]
    moved = transform.GetTransformFromParent().TransformPoint(centre[:3])
    np.testing.assert_allclose(np.subtract(moved, centre[:3]), [-1.0, -2.0, 3.0], atol=1e-4)  # LPS (1, 2, 3) in RAS
    # Saved by Slicer's Save Data: a storage node that names no vanished temporary file, the node marked modified.
    storage = transform.GetStorageNode()
    assert storage is not None and storage.IsA("vtkMRMLTransformStorageNode")
    assert storage.GetFileName() is None, storage.GetFileName()
    assert transform.GetModifiedSinceRead()
    # Saved with the scene and read back from the saved scene.
    reloaded = saved_and_reloaded(scene, tmp_path / "saved")  # kept: its nodes resolve their references through it
    again = reloaded.GetFirstNodeByName("case_t2_to_reference")
    assert again is not None and again.IsA("vtkMRMLGridTransformNode")
    np.testing.assert_allclose(again.GetTransformFromParent().TransformPoint(centre[:3]), moved, atol=1e-4)
    assert again.GetNodeReference(slicer.vtkMRMLTransformNode.GetMovingNodeReferenceRole()).GetName() == "case_t2"
