"""The core's NIfTI codec (numpy) reads what nibabel writes the way nibabel reads it: NIfTI-1 and NIfTI-2,
big-endian, scaled, 4D stacks, the header alone; and refuses damaged files by name."""

import gzip

import nibabel
import numpy as np
import pytest

from ElastixMonaiLabelLib.data.multimodal import channel_names, read_case_volumes
from ElastixMonaiLabelLib.data.nifti import read_header, read_nifti, volume_shape, write_nifti
from ElastixMonaiLabelLib.errors import InputError

OBLIQUE = np.array([[0.0, -1.1, 0.2, 40.0], [0.9, 0.0, 0.1, -12.5], [0.0, 0.3, 2.5, 7.25], [0.0, 0.0, 0.0, 1.0]])


def _save(image, path, descrip: str = ""):
    image.header["descrip"] = descrip.encode()
    nibabel.save(image, str(path))
    return path


@pytest.mark.parametrize("kind", [nibabel.Nifti1Image, nibabel.Nifti2Image], ids=["nifti1", "nifti2"])
@pytest.mark.parametrize("name", ["case.nii", "case.nii.gz"])
def test_stacks_written_by_nibabel_read_as_nibabel_reads_them(tmp_path, kind, name):
    stack = np.random.default_rng(1).random((6, 5, 4, 3)).astype(np.float32)  # (x, y, z, c)
    path = _save(kind(stack, OBLIQUE), tmp_path / name, "channels=t1,t2,flair")
    header = read_header(path)
    assert header.version == (1 if kind is nibabel.Nifti1Image else 2)
    assert header.shape == (6, 5, 4, 3) and header.channels == 3
    np.testing.assert_allclose(header.ijk_to_ras, nibabel.load(str(path)).affine, atol=1e-5)
    assert channel_names(path) == ["t1", "t2", "flair"]
    image = read_nifti(path)
    assert np.array_equal(image.array, stack.transpose(3, 2, 1, 0))  # (c, k, j, i)
    assert list(read_case_volumes(path)) == ["t1", "t2", "flair"]


def test_big_endian_scaled_integers_and_the_vector_layout_read_as_values(tmp_path):
    header = nibabel.Nifti1Header(endianness=">")
    header.set_data_dtype(np.int16)  # nibabel scales the floats into int16 (slope and intercept in the header)
    values = np.random.default_rng(2).random((5, 4, 3)) * 1000.0
    path = _save(nibabel.Nifti1Image(values, OBLIQUE, header), tmp_path / "scaled.nii")
    header = read_header(path)
    assert header.dtype == np.dtype(">i2") and header.slope != 1.0
    np.testing.assert_allclose(read_nifti(path).array, np.asarray(nibabel.load(str(path)).dataobj).transpose(2, 1, 0),
                               rtol=1e-6)
    # (x, y, z, 1, c): NIfTI's vector layout is the same channels-last stack.
    vector = _save(nibabel.Nifti1Image(np.ones((5, 4, 3, 1, 2), np.float32), OBLIQUE), tmp_path / "vector.nii.gz",
                   "channels=t1,t2")
    assert read_header(vector).volume_shape == (5, 4, 3, 2) and channel_names(vector) == ["t1", "t2"]
    assert read_nifti(vector).array.shape == (2, 3, 4, 5)
    assert volume_shape((5, 4, 3, 1, 1)) == (5, 4, 3)


def test_the_header_is_read_without_the_voxels(tmp_path):
    """Sizes and names come from the header alone: a file whose voxels are cut short still has them."""
    whole = write_nifti(tmp_path / "whole.nii.gz", np.ones((20, 30, 40), np.float32), OBLIQUE, "channels=t2")
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(gzip.decompress(whole.read_bytes())[:2000]))
    header = read_header(cut)
    assert header.shape == (40, 30, 20) and channel_names(header) == ["t2"]
    with pytest.raises(InputError, match="truncated or damaged") as error:
        read_nifti(cut)
    assert str(cut) in str(error.value)


def test_unusable_files_are_refused_by_name(tmp_path):
    rgb = tmp_path / "rgb.nii"
    colours = np.zeros((4, 4, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nibabel.save(nibabel.Nifti1Image(colours, np.eye(4)), str(rgb))
    flat = _save(nibabel.Nifti1Image(np.ones((9, 9), np.float32), np.eye(4)), tmp_path / "flat.nii")
    inf = write_nifti(tmp_path / "inf.nii", np.full((3, 3, 3), np.inf, np.float32), np.eye(4))
    (tmp_path / "empty.nii").write_bytes(b"")
    for path, problem in ((rgb, "RGB24 is not a scalar number"), (flat, "a 3D volume or a 4D channels-last stack"),
                          (inf, "27 NaN or infinite voxels"), (tmp_path / "empty.nii", "too short"),
                          (tmp_path, "is a folder")):
        with pytest.raises(InputError, match=problem) as error:
            read_nifti(path)
        assert str(path) in str(error.value)
