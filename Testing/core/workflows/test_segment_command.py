"""``elastix-monailabel segment``: a user's own scans -> co-registration -> the local server's model ->
label map on the reference grid, picture, volumes and QC (3 mm generated subject, 2 atlases: quick)."""

from __future__ import annotations

import csv
import json
import shutil

import itk
import numpy as np
import pytest

from ElastixMonaiLabelLib.cli import main
from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label
from ElastixMonaiLabelLib.data.images import grid_mismatch, read_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES, freesurfer_to_values
from ElastixMonaiLabelLib.workflows.segment import modality_names, structure_volumes
from ElastixMonaiLabelLib.errors import InputError


@pytest.fixture(scope="module")
def scans(make_subject, tmp_path_factory):
    """A subject's scans named as a user's BIDS-like files would be."""
    subject = make_subject(seed=11, spacing_mm=3.0)
    folder = tmp_path_factory.mktemp("scans")
    names = {"t1": "sub-01_T1w.nii.gz", "t2": "sub-01_T2w.nii.gz", "flair": "sub-01_FLAIR.nii.gz"}
    for modality, name in names.items():
        shutil.copy(subject.path(modality), folder / name)
    return subject, [folder / names[m] for m in ("t1", "t2", "flair")]


def test_segment_writes_labels_picture_volumes_and_qc(scans, tmp_path, capsys):
    subject, paths = scans
    out = tmp_path / "result"
    assert main(["segment", *map(str, paths), "--out", str(out), "--atlases", "2"]) == 0
    printed = capsys.readouterr()
    assert "results in" in printed.out and "total intracranial volume" in printed.out

    labels = read_volume(out / "labels.nii.gz", pixel_type="uchar")
    assert grid_mismatch(labels, read_volume(paths[0])) is None  # on the reference grid
    values = itk.array_from_image(labels)
    assert values.max() <= 32 and len(np.unique(values)) > 25
    truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(subject.labels))))
    dice = dice_per_label(values, truth, [s.value for s in SYNTHSEG_STRUCTURES if s.freesurfer_id != 24])
    assert np.mean(list(dice.values())) > 0.6

    assert (out / "segmentation.png").read_bytes().startswith(b"\x89PNG")
    rows = list(csv.reader((out / "volumes.csv").open()))
    assert rows[0][:3] == ["subject", "total intracranial", "Left-Cerebral-White-Matter"] and rows[1][0] == "sub-01_T1w"
    volumes = dict(zip(rows[0][1:], map(float, rows[1][1:])))
    assert volumes["total intracranial"] == pytest.approx(sum(v for k, v in volumes.items() if k != "total intracranial"), rel=1e-3)
    assert 900_000 < volumes["total intracranial"] < 2_300_000  # mm^3
    assert [row[1] for row in csv.reader((out / "labels.csv").open())][1:] == [s.name for s in SYNTHSEG_STRUCTURES]

    qc = json.loads((out / "qc.json").read_text())
    assert qc["channels"].keys() == {"t1", "t2", "flair"} and qc["model"] == "atlas_registration"
    assert all(r["metric_improved"] for r in qc["registration"].values())
    assert qc["model_report"]["failed_atlases"] == [] and not qc["model_report"]["skull_stripped"]
    assert isinstance(qc["warnings"], list)
    for modality in ("sub-01_T2w", "sub-01_FLAIR"):
        assert (out / "registered" / f"{modality}_registered.nii.gz").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # the temporary datastore is gone


def test_modalities_come_from_file_names_or_from_the_user(tmp_path):
    assert modality_names(["a/sub-01_T1w.nii.gz", "a/sub-01_acq-TSE_T2w.nii.gz", "b/AX_FLAIR.nii"]) == ["t1", "t2", "flair"]
    assert modality_names(["x.nii.gz", "y.nii.gz"], ["T1", "t2f"]) == ["t1", "flair"]
    with pytest.raises(InputError, match="cannot tell its modality .* --channels"):
        modality_names(["scan1.nii.gz", "sub-01_T2w.nii.gz"])
    with pytest.raises(InputError, match="repeated: t1"):
        modality_names(["a_T1w.nii.gz", "b_t1.nii.gz"])
    with pytest.raises(InputError, match="2 names for 3 volumes"):
        modality_names(["a", "b", "c"], ["t1", "t2"])


def test_volumes_add_up_as_synthseg_counts_them():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0] = 1  # 16 voxels of left cerebral white matter
    labels[1, :2] = 16  # 8 voxels of CSF: in the total, as SynthSeg counts it
    volumes = structure_volumes(labels, voxel_mm3=2.0)
    assert volumes["Left-Cerebral-White-Matter"] == 32.0 and volumes["CSF"] == 16.0
    assert volumes["total intracranial"] == 48.0


def test_bad_input_is_a_clear_error_and_writes_nothing(scans, tmp_path, capsys):
    _, paths = scans
    out = tmp_path / "never"
    assert main(["segment", str(paths[0]), str(tmp_path / "missing_T2w.nii.gz"), "--out", str(out)]) == 2
    assert "missing_T2w.nii.gz: file not found" in capsys.readouterr().err
    unnamed = tmp_path / "scan.nii.gz"
    shutil.copy(paths[1], unnamed)
    assert main(["segment", str(paths[0]), str(unnamed), "--out", str(out)]) == 2
    assert "--channels" in capsys.readouterr().err
    assert not out.exists()
