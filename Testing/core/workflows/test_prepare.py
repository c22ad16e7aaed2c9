"""prepare: dataset folders -> MONAI Label datastore, resumable, with clear failures."""

import json
import shutil

import itk
import numpy as np
import pytest
import synthseg_stand_in

from ElastixMonaiLabelLib.workflows.prepare import find_cases, prepare_dataset
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label
from ElastixMonaiLabelLib.data.labels import freesurfer_to_values
from ElastixMonaiLabelLib.data.multimodal import channel_names


def synthseg_like(labels_path, out_path):
    """The subject's labels on a 1 mm grid of another origin, as SynthSeg writes them."""
    labels = itk.imread(str(labels_path), itk.SS)
    size = [int(n * s) for n, s in zip(labels.GetLargestPossibleRegion().GetSize(), labels.GetSpacing())]
    grid = itk.Image[itk.SS, 3].New()
    grid.SetRegions(size)
    grid.SetSpacing((1.0, 1.0, 1.0))
    grid.SetOrigin([o - 3.0 for o in labels.GetOrigin()])
    grid.SetDirection(labels.GetDirection())
    grid.Allocate()
    nearest = itk.NearestNeighborInterpolateImageFunction[type(labels), itk.D].New()
    itk.imwrite(itk.resample_image_filter(labels, use_reference_image=True, reference_image=grid, interpolator=nearest), str(out_path))


@pytest.fixture(scope="module")
def brats_folder(make_subject, tmp_path_factory):
    root = tmp_path_factory.mktemp("brats2021")
    for number, seed in ((1, 30), (2, 31), (3, 32), (4, 33)):
        subject = make_subject(seed=seed, spacing_mm=3.0)
        case = f"BraTS2021_{number:05d}"
        folder = root / case
        folder.mkdir()
        for modality, source in (("t1", "t1"), ("t1ce", "t2"), ("t2", "t2"), ("flair", "flair")):
            shutil.copy(subject.path(source), folder / f"{case}_{modality}.nii.gz")
        shutil.copy(subject.labels, folder / f"{case}_seg.nii.gz")  # tumour labels: not imported
        if number == 1:
            synthseg_like(subject.labels, folder / f"{case}_t1_synthseg.nii.gz")
        if number == 3:
            (folder / f"{case}_flair.nii.gz").unlink()
        if number == 4:
            (folder / f"{case}_t2.nii.gz").write_bytes(b"\x00corrupt")
    return root


def test_layouts_find_modalities(brats_folder, tmp_path):
    cases = {c.case_id: c for c in find_cases(brats_folder, "brats2021", "*_synthseg.nii.gz")}
    assert set(cases["BraTS2021_00001"].modalities) == {"t1", "t1ce", "t2", "flair"}
    assert cases["BraTS2021_00001"].labels.name.endswith("_synthseg.nii.gz")
    assert cases["BraTS2021_00002"].labels is None
    oasis = tmp_path / "oasis"
    (oasis / "sub-OAS30001" / "ses-d0129" / "anat").mkdir(parents=True)
    for name in ("run-01_T1w", "acq-TSE_T2w", "FLAIR"):
        (oasis / "sub-OAS30001" / "ses-d0129" / "anat" / f"sub-OAS30001_ses-d0129_{name}.nii.gz").write_bytes(b"")
    (case,) = find_cases(oasis, "oasis3")
    assert case.case_id == "sub-OAS30001_ses-d0129" and set(case.modalities) == {"t1", "t2", "flair"}
    with pytest.raises(InputError, match="unknown layout"):
        find_cases(oasis, "adni")


def test_prepare_writes_cases_labels_and_summary_and_resumes(brats_folder, make_subject, tmp_path):
    out = tmp_path / "datastore"
    summary = prepare_dataset(brats_folder, out, layout="brats2021", label_pattern="*_synthseg.nii.gz", workers=2)
    assert summary["done"] == ["BraTS2021_00001", "BraTS2021_00002"]
    assert "missing modality flair" in summary["failed"]["BraTS2021_00003"]
    assert "BraTS2021_00004_t2.nii.gz" in summary["failed"]["BraTS2021_00004"]
    assert json.loads((out / "prepare_summary.json").read_text()) == summary
    assert channel_names(out / "BraTS2021_00001.nii.gz") == ["t1", "t1ce", "t2", "flair"]
    assert not (out / "BraTS2021_00003.nii.gz").exists()

    # The SynthSeg-style label (1 mm, shifted grid) lands on the reference grid as values 1..32.
    label = itk.array_from_image(itk.imread(str(out / "labels" / "final" / "BraTS2021_00001.nii.gz")))
    truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(make_subject(seed=30, spacing_mm=3.0).labels))))
    assert label.shape == truth.shape and label.max() <= 32
    big = [1, 2, 19, 20, 13]
    assert min(dice_per_label(label, truth, big).values()) > 0.9

    # A rerun skips finished cases and leaves their files alone; an unfinished case is redone.
    stamp = (out / "BraTS2021_00001.nii.gz").stat().st_mtime_ns
    (out / ".prepare" / "BraTS2021_00002.json").unlink()  # as if interrupted before its marker
    again = prepare_dataset(brats_folder, out, layout="brats2021", label_pattern="*_synthseg.nii.gz")
    assert again["skipped"] == ["BraTS2021_00001"] and again["done"] == ["BraTS2021_00002"]
    assert (out / "BraTS2021_00001.nii.gz").stat().st_mtime_ns == stamp
    assert not [p for p in out.rglob(".*partial*")]


def test_prepare_rejects_a_label_on_another_case_grid(brats_folder, tmp_path):
    source = tmp_path / "one"
    shutil.copytree(brats_folder / "BraTS2021_00002", source / "BraTS2021_00002")
    far = itk.imread(str(source / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz"), itk.SS)
    far.SetOrigin([o + 500.0 for o in far.GetOrigin()])
    itk.imwrite(far, str(source / "BraTS2021_00002" / "BraTS2021_00002_t1_synthseg.nii.gz"))
    summary = prepare_dataset(source, tmp_path / "store", layout="brats2021", label_pattern="*_synthseg.nii.gz")
    assert "covers only 0% of the reference image" in summary["failed"]["BraTS2021_00002"]
    assert not list((tmp_path / "store").glob("*.nii.gz"))


def test_prepare_command_line(brats_folder, tmp_path):
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-m", "ElastixMonaiLabelLib", "prepare", str(brats_folder), "--out", str(tmp_path / "ds"),
         "--layout", "brats2021", "--channels", "t1,t2"],
        capture_output=True, text=True,
    )
    assert completed.returncode == 4  # some cases failed: said, not hidden
    assert "done 3, skipped 0" in completed.stdout and "failed BraTS2021_00004" in completed.stderr
    assert channel_names(tmp_path / "ds" / "BraTS2021_00003.nii.gz") == ["t1", "t2"]  # flair not asked for


def test_prepare_can_label_cases_by_atlas_registration(brats_folder, tmp_path):
    source = tmp_path / "one"
    shutil.copytree(brats_folder / "BraTS2021_00002", source / "BraTS2021_00002")
    out = tmp_path / "store"
    summary = prepare_dataset(source, out, layout="brats2021", channels=["t1", "t2"], atlas_labels=1)
    assert summary["done"] == ["BraTS2021_00002"]
    label = itk.array_from_image(itk.imread(str(out / "labels" / "original" / "BraTS2021_00002.nii.gz")))
    assert label.max() == 32 and label.shape == itk.array_from_image(itk.imread(str(source / "BraTS2021_00002" / "BraTS2021_00002_t1.nii.gz"))).shape
    assert not (out / "labels" / "final").exists()


def test_prepare_on_a_local_dask_cluster(brats_folder, tmp_path):
    summary = prepare_dataset(brats_folder, tmp_path / "store", layout="brats2021", channels=["t1", "t2"],
                              scheduler="local", workers=2)
    assert summary["done"] == ["BraTS2021_00001", "BraTS2021_00002", "BraTS2021_00003"]
    assert "BraTS2021_00004_t2.nii.gz" in summary["failed"]["BraTS2021_00004"]  # errors come back whole
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        prepare_dataset(brats_folder, tmp_path / "other", layout="brats2021", scheduler="tcp://127.0.0.1:9")


def install_fake_synthseg(folder, monkeypatch, truth: dict):
    for key, value in synthseg_stand_in.install(folder, truth).items():
        monkeypatch.setenv(key, value)
    return folder / "calls.jsonl"


def test_prepare_runs_synthseg_as_the_annotator(brats_folder, make_subject, tmp_path, monkeypatch):
    from ElastixMonaiLabelLib.segmentation.synthseg_tool import SynthSegCommand, find_synthseg

    source = tmp_path / "src"
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        shutil.copytree(brats_folder / case, source / case)
    truth_file = make_subject(seed=30, spacing_mm=3.0).labels
    calls = install_fake_synthseg(tmp_path / "bin", monkeypatch, {"BraTS2021_00001_t1.nii.gz": truth_file})
    out = tmp_path / "store"
    summary = prepare_dataset(source, out, layout="brats2021", channels=["t1", "t2"], synthseg=find_synthseg())

    # Case 1: SynthSeg ran on the reference image; its 1 mm LIA labels land on the case grid as 1..32.
    assert summary["done"] == ["BraTS2021_00001"], summary["failed"]
    (arguments,) = [json.loads(line) for line in calls.read_text().splitlines() if "00001" in line]
    assert arguments[arguments.index("--i") + 1] == str((source / "BraTS2021_00001" / "BraTS2021_00001_t1.nii.gz").resolve())
    label = itk.array_from_image(itk.imread(str(out / "labels" / "final" / "BraTS2021_00001.nii.gz")))
    truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(truth_file))))
    assert label.shape == truth.shape and label.max() <= 32
    assert min(dice_per_label(label, truth, [1, 2, 13, 19, 20]).values()) > 0.9
    written = itk.imread(str(out / "synthseg" / "BraTS2021_00001_synthseg.nii.gz"))
    assert tuple(written.GetSpacing()) == (1.0, 1.0, 1.0) and itk.size(written)[0] != label.shape[2]  # another grid
    kept = sorted(p.name for p in (out / "synthseg").iterdir())
    assert kept == ["BraTS2021_00001_qc.csv", "BraTS2021_00001_synthseg.nii.gz", "BraTS2021_00001_volumes.csv"]
    record = json.loads((out / ".prepare" / "BraTS2021_00001.json").read_text())
    assert record["label_file"] == str(out / "synthseg" / "BraTS2021_00001_synthseg.nii.gz")

    # Case 2: SynthSeg failed; the reason (its own message) is in the summary, nothing half-written.
    reason = summary["failed"]["BraTS2021_00002"]
    assert "SynthSeg failed (exit code 1)" in reason and "cannot segment" in reason and "BraTS2021_00002_t1" in reason
    assert not (out / "BraTS2021_00002.nii.gz").exists() and not list((out / "synthseg").glob(".*"))

    # SynthSeg's outputs are kept: redoing case 1 reuses them instead of running SynthSeg again.
    (out / ".prepare" / "BraTS2021_00001.json").unlink()
    again = prepare_dataset(source, out, layout="brats2021", channels=["t1", "t2"],
                            synthseg=SynthSegCommand(("/bin/false",)))
    assert again["done"] == ["BraTS2021_00001"] and "exit code 1" in again["failed"]["BraTS2021_00002"]


def test_prepare_says_when_synthseg_is_not_installed(brats_folder, tmp_path, monkeypatch, capsys):
    from ElastixMonaiLabelLib.cli import main
    from ElastixMonaiLabelLib.segmentation.synthseg_tool import find_synthseg

    monkeypatch.setenv("PATH", str(tmp_path))  # no mri_synthseg anywhere
    monkeypatch.delenv("ELASTIXMONAILABEL_SYNTHSEG", raising=False)
    assert main(["prepare", str(brats_folder), "--out", str(tmp_path / "ds"), "--labels", "synthseg"]) == 2
    error = capsys.readouterr().err
    assert "SynthSeg is not installed" in error and "--labels '*_synthseg.nii.gz'" in error
    assert not (tmp_path / "ds").exists()  # checked before any work
    with pytest.raises(InputError, match="not a SynthSeg checkout"):
        find_synthseg(tmp_path)
    (tmp_path / "scripts" / "commands").mkdir(parents=True)
    (tmp_path / "scripts" / "commands" / "SynthSeg_predict.py").write_text("")
    with pytest.raises(InputError, match="weights are missing"):
        find_synthseg(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "synthseg_2.0.h5").write_bytes(b"")
    assert find_synthseg(tmp_path, python="/usr/bin/python3").program == ("/usr/bin/python3", str(tmp_path / "scripts" / "commands" / "SynthSeg_predict.py"))


def test_brats_cases_are_kept_as_they_are_unless_registration_is_asked_for(make_subject, tmp_path):
    # BraTS modalities come co-registered on one grid; re-registering them would move them 1-2 mm.
    import nibabel

    case = "BraTS-GLI-00001-000"
    source = tmp_path / "brats2023" / case
    source.mkdir(parents=True)
    subject = make_subject(seed=40, spacing_mm=3.0)
    for suffix, modality in (("t1n", "t1"), ("t1c", "t1"), ("t2w", "t2"), ("t2f", "flair")):
        shutil.copy(subject.path(modality), source / f"{case}-{suffix}.nii.gz")
    summary = prepare_dataset(source.parent, tmp_path / "kept", layout="brats2023")
    assert summary["done"] == [case] and "kept as they are" in summary["registration"]
    stored = nibabel.load(str(tmp_path / "kept" / f"{case}.nii.gz"))
    for index, suffix in enumerate(("t1n", "t1c", "t2w", "t2f")):
        original = nibabel.load(str(source / f"{case}-{suffix}.nii.gz"))
        assert np.array_equal(np.asarray(stored.dataobj)[..., index], np.asarray(original.dataobj, dtype=np.float32))
        np.testing.assert_allclose(stored.affine, original.affine, atol=1e-5)
    record = json.loads((tmp_path / "kept" / ".prepare" / f"{case}.json").read_text())
    assert set(record["registration"].values()) == {"kept as it is: already on the reference grid"}

    # A modality on another grid is not what BraTS hands out: refused with what to do.
    thick = make_subject(seed=40, spacing_mm=3.0, thick_flair=6.0)
    shutil.copy(thick.path("flair"), source / f"{case}-t2f.nii.gz")
    refused = prepare_dataset(source.parent, tmp_path / "refused", layout="brats2023")
    assert "is not on the grid of" in refused["failed"][case] and "--register" in refused["failed"][case]
    registered = prepare_dataset(source.parent, tmp_path / "registered", layout="brats2023", register=True)
    assert registered["done"] == [case] and registered["registration"] == "co-registered to t1"


def test_local_dask_cluster_is_reachable_from_this_machine_only():
    """prepare --scheduler local: scheduler, workers and dashboard on 127.0.0.1 (Dask's default is every interface)."""
    from ElastixMonaiLabelLib.workflows.prepare import local_cluster

    cluster = local_cluster(1)
    try:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:"), cluster.scheduler_address
        workers = list(cluster.scheduler_info["workers"])
        assert workers and all(address.startswith("tcp://127.0.0.1:") for address in workers), workers
        assert cluster.dashboard_link.startswith("http://127.0.0.1:"), cluster.dashboard_link
        assert ":8787/" not in cluster.dashboard_link  # a free port, not Dask's well-known one
    finally:
        cluster.close()
