"""ElastixMonaiLabelSlicer on real MRML (slicer-core): volumes on oblique, anisotropic, mirrored grids and under parent
transforms, label maps <-> segments with names and colours, the export the server gets, segmentation edits, registration
results as linear transforms (saved with a real storage node and read back), and the comparison in the slice views."""

import json

import numpy as np
import pytest

from ElastixMonaiLabelLib.data.geometry import from_parent_under, lps_to_ras_transform
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.voxels import VoxelVolume
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.registration.voxel_arrays import RegistrationOutcome
from ElastixMonaiLabelLib.synthetic.sample_data import rigid_matrix
from ElastixMonaiLabelSlicer import registration_nodes, segmentations, views, volumes
from oblique_grids import oblique_matrix


def linear_transform(scene, matrix, name="parent"):
    import slicer

    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    return node


@pytest.mark.parametrize("left_handed", [False, True], ids=["right-handed", "mirrored"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_volumes_go_into_nodes_and_come_back_exactly(eml, scene, left_handed, dtype):
    voxels = (np.random.default_rng(0).random((7, 6, 5)) * 100).astype(dtype)  # (k, j, i)
    node = volumes.add_volume_node(VoxelVolume(voxels, oblique_matrix(left_handed)), "oblique")
    back = volumes.voxel_volume(node, dtype)
    assert back.array.dtype == dtype and np.array_equal(back.array, voxels)
    np.testing.assert_allclose(back.ijk_to_ras, oblique_matrix(left_handed), atol=1e-9)
    assert node.GetImageData().GetDimensions() == (5, 6, 7)


def test_a_parent_transform_is_part_of_the_world_geometry(eml, scene):
    node = volumes.add_volume_node(VoxelVolume(np.zeros((4, 5, 6), np.float32), oblique_matrix()), "moved")
    parent = rigid_matrix(np.radians([5.0, 0.0, -10.0]), np.array([4.0, -3.0, 2.0]), np.zeros(3))
    node.SetAndObserveTransformNodeID(linear_transform(scene, parent).GetID())
    np.testing.assert_allclose(volumes.world_ijk_to_ras(node), parent @ oblique_matrix(), atol=1e-9)
    np.testing.assert_allclose(volumes.voxel_volume(node).ijk_to_ras, parent @ oblique_matrix(), atol=1e-9)
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "bent")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(ValueError, match="moved is under a non-linear transform"):
        volumes.world_ijk_to_ras(node)


def synthseg_label(quick):
    """A label map on the quick subject's grid with all 32 SynthSeg values (and background)."""
    reference = quick.volumes["t1"]
    values = np.arange(np.prod(reference.array.shape)) % 33
    return VoxelVolume(values.reshape(reference.array.shape).astype(np.uint8), reference.ijk_to_ras)


def test_label_maps_become_named_coloured_segments_and_go_back_unchanged(eml, scene, quick):
    reference = volumes.add_case_nodes({"t1": quick.volumes["t1"]}, "case")["t1"]
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    label = synthseg_label(quick)
    assert segmentations.load_segmentation(label, None, segmentation, reference) == 32
    segments = segmentation.GetSegmentation()
    colours = {s.name: tuple(c / 255 for c in s.color) for s in SYNTHSEG_STRUCTURES}
    names = [segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())]
    assert names == [s.name for s in SYNTHSEG_STRUCTURES]
    for index, name in enumerate(names):
        np.testing.assert_allclose(segments.GetNthSegment(index).GetColor(), colours[name], atol=1e-3)
    assert [row[1] for row in json.loads(segmentation.GetAttribute(segmentations.LABEL_TABLE))] == names
    # Only the segmentation is left: the temporary label map and colour table are gone.
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == 0
    exported = segmentations.label_volume_from_segmentation(segmentation, reference)
    assert np.array_equal(exported.array, label.array)
    np.testing.assert_allclose(exported.ijk_to_ras, label.ijk_to_ras, atol=1e-6)
    # The reference moved by a parent transform: the export is on the reference's world grid.
    shift = np.eye(4)
    shift[:3, 3] = [5.0, 0.0, -2.0]
    reference.SetAndObserveTransformNodeID(linear_transform(scene, shift).GetID())
    moved = segmentations.label_volume_from_segmentation(segmentation, reference)
    np.testing.assert_allclose(moved.ijk_to_ras, shift @ label.ijk_to_ras, atol=1e-6)


def test_a_segment_the_label_table_does_not_know_is_refused_by_name(eml, scene, quick):
    reference = volumes.add_case_nodes({"t1": quick.volumes["t1"]}, "case")["t1"]
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    segmentations.load_segmentation(synthseg_label(quick), None, segmentation, reference)
    segmentation.GetSegmentation().AddEmptySegment("tumour", "tumour")
    with pytest.raises(InputError, match="tumour"):
        segmentations.label_volume_from_segmentation(segmentation, reference)


def test_edits_are_told_from_what_the_server_has(eml, scene, quick):
    from vtk.util import numpy_support

    reference = volumes.add_case_nodes({"t1": quick.volumes["t1"]}, "case")["t1"]
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    assert not segmentations.holds_edits(segmentation)  # nothing to lose
    segmentations.load_segmentation(synthseg_label(quick), None, segmentation, reference)
    assert not segmentations.holds_edits(segmentation)  # as the server sent it
    # A voxel painted (Segment Editor changes the layer's voxels in place, then says so with Modified).
    layer = segmentation.GetSegmentation().GetLayerDataObject(0)
    voxels = numpy_support.vtk_to_numpy(layer.GetPointData().GetScalars())
    voxels[0] = 5 if voxels[0] != 5 else 6
    layer.Modified()
    assert segmentations.holds_edits(segmentation)
    segmentations.mark_saved(segmentation)  # what the Logic does once a submit succeeded
    assert not segmentations.holds_edits(segmentation)
    segmentation.GetSegmentation().GetNthSegment(3).SetName("Left-Lateral-Ventricle-renamed")
    assert segmentations.holds_edits(segmentation)
    painted = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "painted by hand")
    painted.GetSegmentation().AddEmptySegment("lesion", "lesion")
    assert segmentations.holds_edits(painted)  # never came from the server: the user's own


def registration_outcome(quick, matrix_lps):
    return RegistrationOutcome("t2", quick.volumes["t2"], {"modality": "t2"}, matrix_lps=matrix_lps)


def test_a_linear_registration_places_the_volume_under_its_parent_and_replaces_the_previous(eml, scene, quick, tmp_path):
    import slicer

    nodes = volumes.add_case_nodes({"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]}, "case")
    parent = linear_transform(scene, rigid_matrix(np.radians([0.0, 10.0, 0.0]), np.array([4.0, -3.0, 2.0]), np.zeros(3)))
    nodes["t2"].SetAndObserveTransformNodeID(parent.GetID())
    matrix_lps = rigid_matrix(np.radians([3.0, -2.0, 5.0]), np.array([1.0, 2.0, -1.5]), np.array([0.0, -10.0, 5.0]))
    registered = registration_nodes.load_registration(registration_outcome(quick, matrix_lps), nodes["t1"], nodes["t2"])
    transform = nodes["t2"].GetParentTransformNode()
    assert transform.GetName() == "case_t2_to_reference" and transform.GetParentTransformNode() is parent
    assert registration_nodes.own_transform_of(nodes["t2"]) is transform
    assert registration_nodes.original_parent_of(nodes["t2"]) is parent
    assert registration_nodes.registered_volume_of([registered], nodes["t2"]) is registered
    expected = from_parent_under(lps_to_ras_transform(matrix_lps), volumes.to_world(parent))
    np.testing.assert_allclose(slicer.util.arrayFromTransformMatrix(transform, toWorld=False), np.linalg.inv(expected),
                               atol=1e-9)
    # World placement of the moving volume: the registration's inverse, after the parent it had.
    np.testing.assert_allclose(volumes.to_world(transform),
                               np.linalg.inv(lps_to_ras_transform(matrix_lps)) @ volumes.to_world(parent), atol=1e-9)
    # Registering again replaces the transform (one per moving volume) and reuses the registered volume.
    again = registration_nodes.load_registration(registration_outcome(quick, np.eye(4)), nodes["t1"], nodes["t2"],
                                                     registered)
    assert again is registered and nodes["t2"].GetParentTransformNode().GetParentTransformNode() is parent
    assert [t.GetName() for t in slicer.util.getNodesByClass("vtkMRMLLinearTransformNode")] == [
        "parent", "case_t2_to_reference"]
    # Saved by a real transform storage node and read back into a new node: the same matrix.
    transform = nodes["t2"].GetParentTransformNode()
    assert transform.AddDefaultStorageNode()
    storage = transform.GetStorageNode()
    storage.SetFileName(str(tmp_path / "t2_to_reference.h5"))
    assert storage.WriteData(transform)
    read = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "read back")
    reader = slicer.vtkMRMLTransformStorageNode()
    reader.SetFileName(str(tmp_path / "t2_to_reference.h5"))
    assert reader.ReadData(read)
    np.testing.assert_allclose(slicer.util.arrayFromTransformMatrix(read), slicer.util.arrayFromTransformMatrix(transform),
                               atol=1e-9)


def test_a_registration_not_placed_under_leaves_the_volume_where_it_was(eml, scene, quick):
    nodes = volumes.add_case_nodes({"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]}, "case")
    registration_nodes.load_registration(registration_outcome(quick, np.eye(4)), nodes["t1"], nodes["t2"],
                                             place_under=False)
    assert nodes["t2"].GetParentTransformNode() is None
    assert scene.GetFirstNodeByName("case_t2_to_reference") is not None


def test_fetched_channels_are_their_own_registration(eml, scene, quick):
    nodes = volumes.add_case_nodes({"t2": quick.volumes["t2"]}, "case-7", mark="on reference grid")
    assert registration_nodes.registered_volume_of([], nodes["t2"]) is nodes["t2"]


def test_the_comparison_recomputes_the_checkerboard_only_when_it_changes(eml, scene, quick):
    import slicer

    composites = [scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode") for _ in range(3)]  # Red, Yellow, Green
    nodes = volumes.add_case_nodes({"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]}, "case")
    comparison = views.Comparison()
    comparison.show(nodes["t1"], nodes["t2"], "fade", 0.3)
    assert all(v.GetBackgroundVolumeID() == nodes["t1"].GetID() and v.GetForegroundVolumeID() == nodes["t2"].GetID()
               and v.GetForegroundOpacity() == pytest.approx(0.3) for v in composites)
    comparison.show(nodes["t1"], nodes["t2"], "checkerboard", 0.3)
    board = scene.GetFirstNodeByName("case_t2_checkerboard")
    assert all(v.GetBackgroundVolumeID() == board.GetID() and v.GetForegroundVolumeID() is None for v in composites)
    np.testing.assert_allclose(board.GetOrigin(), nodes["t1"].GetOrigin())
    computed = board.GetImageData().GetMTime()
    comparison.show(nodes["t1"], nodes["t2"], "checkerboard", 0.8)  # an opacity change: nothing to compute
    assert board.GetImageData().GetMTime() == computed
    slicer.util.arrayFromVolume(nodes["t2"])[0, 0, 0] += 1.0
    slicer.util.arrayFromVolumeModified(nodes["t2"])  # new voxels (a registration ran again): computed again
    comparison.show(nodes["t1"], nodes["t2"], "checkerboard", 0.8)
    assert board.GetImageData().GetMTime() > computed
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 3  # one board, reused
