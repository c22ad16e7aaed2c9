"""End to end: the real MONAI Label server (127.0.0.1, free port) with this project's app.

Driven by the project's client and by the upstream monailabel.client.MONAILabelClient
(run in the server's environment, which has monailabel).
"""

import json
import shutil
import subprocess
import textwrap

import itk
import nibabel
import numpy as np
import pytest
import synthseg_stand_in

from ElastixMonaiLabelLib.client.rest import MonaiLabelClient, ServerError, normalize_url
from ElastixMonaiLabelLib.workflows.prepare import prepare_dataset
from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label
from ElastixMonaiLabelLib.data.images import read_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES, freesurfer_to_values
from ElastixMonaiLabelLib.data.multimodal import case_id, channel_names, read_case, write_case, write_case_volumes
from ElastixMonaiLabelLib.module_support.segments import labelmap_from_masks, segments_from_params
from ElastixMonaiLabelLib.module_support.server_work import same_case
from ElastixMonaiLabelLib.client.local_server import LocalServer, default_python, free_port


@pytest.fixture(scope="module")
def subject(make_subject):
    return make_subject(seed=20, spacing_mm=3.0)


@pytest.fixture(scope="module")
def server(subject, make_subject, tmp_path_factory):
    """A datastore made by ``prepare`` from two generated subjects (generic layout), served by the app."""
    source = tmp_path_factory.mktemp("dataset")
    for case, case_subject in (("case-001", subject), ("case-002", make_subject(seed=21, spacing_mm=3.0))):
        (source / case).mkdir()
        for modality in ("t1", "t2", "flair"):
            shutil.copy(case_subject.path(modality), source / case / f"{case}_{modality}.nii.gz")
    studies = tmp_path_factory.mktemp("datastore")
    summary = prepare_dataset(source, studies, layout="generic")
    assert summary["done"] == ["case-001", "case-002"], summary
    # The server finds "SynthSeg" on its PATH (a stand-in: see synthseg_stand_in) and offers model mri_synthseg.
    stand_in = synthseg_stand_in.install(tmp_path_factory.mktemp("synthseg"), {"t1.nii.gz": subject.labels})
    local = LocalServer(studies, conf={"atlases": "3", "atlas_spacing": "3", "cache": str(tmp_path_factory.mktemp("cache"))},
                        env=stand_in)
    client = local.start()
    yield local, client, studies
    local.stop()


def test_multimodal_case_file_carries_its_channels(server, subject):
    _, _, studies = server
    assert channel_names(studies / "case-001.nii.gz") == ["t1", "t2", "flair"]
    channels = read_case(studies / "case-002.nii.gz")
    assert list(channels) == ["t1", "t2", "flair"]
    # A 3D volume is a one-channel case.
    write_case({"T1w": read_volume(subject.path("t1"))}, studies.parent / "single.nii.gz")
    assert list(read_case(studies.parent / "single.nii.gz")) == ["t1"]


def test_info_lists_model_channels_labels_and_strategies(server):
    _, client, _ = server
    info = client.info()
    model = info["models"]["atlas_registration"]
    assert model["channels"]["any_of"] == ["t1", "t2", "flair"]
    assert [entry["value"] for entry in model["label_table"]] == list(range(1, 33))
    assert model["labels"]["Left-Hippocampus"] == 14
    assert {"random", "first"} <= set(info["strategies"])
    assert info["labels"]["Left-Cerebral-White-Matter"] == 1 and len(info["labels"]) == 32


def test_training_without_labels_says_why_it_cannot_run(server):
    _, client, _ = server
    client.train_start("segmentation", {"max_epochs": 1})
    status = client.wait_for_training(timeout=120, poll=1)
    assert status["status"] == "ERROR", status
    assert "training needs at least 2 labelled images" in json.dumps(status["details"])


def test_infer_returns_named_labels_on_the_reference_grid(server, subject, tmp_path):
    _, client, studies = server
    result = client.infer("atlas_registration", "case-001", tmp_path / "label.nii.gz")
    label = nibabel.load(str(result.label_path))
    case = nibabel.load(str(studies / "case-001.nii.gz"))
    np.testing.assert_allclose(label.affine, case.affine, atol=1e-4)
    assert label.shape == case.shape[:3]
    values = np.asarray(label.dataobj)
    assert set(np.unique(values).tolist()) <= set(range(0, 33)) and values.max() == 32
    names = result.params["label_names"]
    assert names == {s.name: s.value for s in SYNTHSEG_STRUCTURES}
    assert result.params["label_table"][0]["color"] == [245, 245, 245]
    truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(subject.labels))))
    predicted = itk.array_from_image(itk.imread(str(result.label_path)))
    dice = dice_per_label(predicted, truth, list(range(1, 33)))
    mean = float(np.mean(list(dice.values())))
    print(f"atlas_registration mean Dice at 3 mm: {mean:.3f}")
    assert mean > 0.6


def test_server_runs_the_users_synthseg(server, subject, tmp_path):
    _, client, studies = server
    assert client.info()["models"]["mri_synthseg"]["description"].startswith("SynthSeg itself")
    result = client.infer("mri_synthseg", "case-001", tmp_path / "synthseg.nii.gz")
    assert result.params["channel"] == "t1" and result.params["label_table"][0]["name"] == "Left-Cerebral-White-Matter"
    assert result.params["volumes_mm3"]["17"] > 1000 and result.params["qc"]  # left hippocampus, from SynthSeg's CSV
    label = nibabel.load(str(result.label_path))
    np.testing.assert_allclose(label.affine, nibabel.load(str(studies / "case-001.nii.gz")).affine, atol=1e-4)
    truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(subject.labels))))
    dice = dice_per_label(itk.array_from_image(itk.imread(str(result.label_path))), truth, [1, 2, 13, 19, 20])
    assert min(dice.values()) > 0.9  # SynthSeg's 1 mm LIA output brought back onto the 3 mm case grid
    with pytest.raises(ServerError) as failed:
        client.infer("mri_synthseg", "case-001", tmp_path / "flair.nii.gz", params={"channel": "flair"})
    assert "502" in str(failed.value) and "SynthSeg failed" in str(failed.value) and "cannot segment" in str(failed.value)


def test_save_label_and_next_sample(server, tmp_path):
    _, client, studies = server
    label = tmp_path / "edited.nii.gz"
    reference = nibabel.load(str(studies / "case-001.nii.gz"))
    nibabel.save(nibabel.Nifti1Image(np.ones(reference.shape[:3], np.uint8), reference.affine), str(label))
    client.save_label("case-001", label, tag="final")
    stored = client.datastore()["objects"]["case-001"]["labels"]
    assert "final" in stored
    # case-002 is the only unlabeled one left.
    assert client.next_sample("first")["id"] == "case-002"


def test_client_mistakes_get_4xx_with_a_message(server, tmp_path):
    _, client, studies = server
    with pytest.raises(ServerError, match="unknown model 'nonexistent'") as error:
        client.infer("nonexistent", "case-001", tmp_path / "x.nii.gz")
    assert error.value.status == 404
    with pytest.raises(ServerError, match="not in the datastore") as error:
        client.infer("atlas_registration", "no-such-case", tmp_path / "x.nii.gz")
    assert error.value.status == 404
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti file")
    with pytest.raises(ServerError, match="broken.nii.gz.*is not a NIfTI file") as error:
        client.infer("atlas_registration", "case-001", tmp_path / "x.nii.gz", file=broken)
    assert error.value.status == 422
    assert not (tmp_path / "x.nii.gz").exists()


def test_a_case_no_atlas_can_register_is_refused_with_422_and_the_reasons(server, tmp_path):
    # Real scans once made elastix stop ("Too many samples map outside moving image buffer") and the
    # server answer HTTP 500. Now a failed atlas is left out; when every atlas fails the answer is 422.
    _, client, _ = server
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.nii.gz"
    nibabel.save(nibabel.Nifti1Image(rng.uniform(0, 100, (24, 24, 24)).astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0])), str(noise))
    with pytest.raises(ServerError, match="no atlas could be registered onto this image") as refused:
        client.infer("atlas_registration", "not-a-brain", tmp_path / "x.nii.gz", file=noise)
    assert refused.value.status == 422 and "atlas-00" in str(refused.value)


def test_server_down_and_bad_address_are_clear():
    with pytest.raises(ServerError, match="cannot reach the MONAI Label server"):
        MonaiLabelClient(f"127.0.0.1:{free_port()}", timeout=5).info()
    assert normalize_url("localhost:8000/") == "http://localhost:8000"
    with pytest.raises(ServerError, match="not a server address"):
        normalize_url("ftp://x")


def test_upstream_monailabel_client_works_with_the_app(server, tmp_path):
    local, _, _ = server
    script = textwrap.dedent(f"""
        import json, shutil
        from monailabel.client import MONAILabelClient
        client = MONAILabelClient({local.url!r})
        info = client.info()
        image, params = client.infer("atlas_registration", "case-002", {{}})
        shutil.copy(image, {str(tmp_path / 'upstream.nii.gz')!r})
        saved = client.save_label("case-002", image, tag="final")
        print(json.dumps({{"models": list(info["models"]), "names": params["label_names"], "saved": saved}}))
    """)
    completed = subprocess.run([str(default_python()), "-c", script], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    reply = json.loads(completed.stdout.strip().splitlines()[-1])
    assert reply["models"] == ["atlas_registration", "segmentation", "synthseg", "mri_synthseg"]
    assert reply["names"]["Brain-Stem"] == 13
    assert np.asarray(nibabel.load(str(tmp_path / "upstream.nii.gz")).dataobj).max() == 32


def test_module_round_trip_without_slicer(server, subject, tmp_path):
    """What the Slicer module does, minus the nodes: case file -> content id -> upload -> infer -> segments
    (names, colours) -> edited masks -> label map with the table's values -> save -> download the case back."""
    _, client, studies = server
    channels = {m: read_volume(subject.path(m)) for m in ("t1",)}
    case = write_case(channels, tmp_path / "case.nii.gz")
    image_id = case_id("sub 20 T1", case)
    assert image_id == case_id("sub 20 T1", case) and image_id.startswith("sub-20-T1-")
    assert client.upload_image(case, image_id) == image_id
    result = client.infer("atlas_registration", image_id, tmp_path / "label.nii.gz")
    labels = np.asarray(nibabel.load(str(result.label_path)).dataobj)
    specs = segments_from_params(result.params, np.unique(labels))
    assert [s.value for s in specs] == list(range(1, 33))
    assert next(s for s in specs if s.name == "Left-Putamen").color == pytest.approx((236 / 255, 13 / 255, 176 / 255))
    # The user deletes the ventricles' segments and paints the rest as they were.
    deleted = {s.value for s in specs if s.name.endswith(("Ventricle", "Lat-Vent"))}
    masks = {s.name: labels == s.value for s in specs if s.value not in deleted}
    edited = labelmap_from_masks(masks)
    assert len(deleted) == 6 and not np.isin(edited, list(deleted)).any()
    assert (edited[~np.isin(labels, list(deleted))] == labels[~np.isin(labels, list(deleted))]).all()
    label_file = tmp_path / "edited.nii.gz"
    nibabel.save(nibabel.Nifti1Image(edited, nibabel.load(str(case)).affine), str(label_file))
    client.save_label(image_id, label_file, tag="final")
    assert "final" in client.datastore()["objects"][image_id]["labels"]
    downloaded = client.download_image(image_id, tmp_path / "downloaded.nii.gz")
    assert downloaded.read_bytes() == case.read_bytes()


def test_slicer_module_jobs_against_the_server(server, tmp_path):
    """The Slicer module's own path, minus the nodes, on the arrays it copies out of them: a generated subject
    co-registered by the elastix executable, sent as one case (numpy NIfTI), segmented, the training followed on
    the module's job board until the server says why it stopped, the label submitted, the next case fetched."""
    import time

    from ElastixMonaiLabelLib.registration.voxel_arrays import RegistrationRequest, registration_work
    from ElastixMonaiLabelLib.runtime.jobs import JobBoard
    from ElastixMonaiLabelLib.runtime.processes import CancelToken
    from ElastixMonaiLabelLib.synthetic.quick_subject import make_quick_subject
    from ElastixMonaiLabelLib.module_support.server_work import TrainingRun, next_sample_work, segmentation_work, submit_work

    _, client, studies = server
    subject = make_quick_subject(seed=3)
    outcomes = registration_work(RegistrationRequest(
        subject.volumes["t1"], [subject.volumes["t2"], subject.volumes["flair"]], ["t1", "t2", "flair"], tmp_path / "work",
        engine="executable", elastix=shutil.which("elastix"), transformix=shutil.which("transformix")),
        lambda *event: None, CancelToken())
    channels = {"t1": subject.volumes["t1"], **{o.modality: o.registered for o in outcomes}}
    image_id, label, params, _fingerprint = segmentation_work(client, "atlas_registration", "quick subject", channels,
                                                              tmp_path, lambda *event: None, CancelToken())
    assert image_id.startswith("quick-subject-") and channel_names(studies / f"{image_id}.nii.gz") == ["t1", "t2", "flair"]
    np.testing.assert_allclose(label.ijk_to_ras, subject.volumes["t1"].ijk_to_ras)
    assert label.array.dtype == np.uint8 and len(np.unique(label.array)) > 20
    assert {s.name for s in segments_from_params(params, np.unique(label.array))} >= {"Left-Hippocampus", "Brain-Stem"}

    board, heard = JobBoard(), []
    run = TrainingRun(client, "segmentation", 1)
    run.start(board, lambda fraction, message: heard.append(message))
    deadline = time.monotonic() + 180
    while not board.idle and time.monotonic() < deadline:
        for _role, job, on_done in board.poll()[1]:
            on_done(job)
        time.sleep(0.2)
    assert board.idle and not run.running and heard[-1].startswith("training error"), heard

    # Before the label goes back, at least this image is unlabelled: the strategy has a case to give.
    next_id, fetched, _fingerprint = next_sample_work(client, "first", tmp_path)
    expected = read_case(studies / f"{next_id}.nii.gz")
    assert list(fetched) == list(expected)
    assert np.array_equal(fetched["t1"].array, itk.array_from_image(expected["t1"]))
    assert submit_work(client, image_id, label, tmp_path) == image_id
    assert "final" in client.datastore()["objects"][image_id]["labels"]


def test_a_fetched_case_is_segmented_and_labelled_where_it_is(server, tmp_path):
    """Fetch next case -> Segment -> Submit, as the module runs them: the model runs on the fetched image (nothing is
    uploaded) and the final label lands on it, so the strategy stops offering it and the datastore gains no copy."""
    from ElastixMonaiLabelLib.runtime.processes import CancelToken
    from ElastixMonaiLabelLib.synthetic.quick_subject import make_quick_subject
    from ElastixMonaiLabelLib.module_support.server_work import next_sample_work, segmentation_work, submit_work
    from ElastixMonaiLabelLib.data.voxels import VoxelVolume

    _, client, studies = server
    # A case someone else put on the server, unlabelled, so that the strategy has one to give whatever ran before.
    waiting = make_quick_subject(seed=8)
    case = write_case_volumes(waiting.volumes, tmp_path / "waiting.nii.gz")
    client.upload_image(case, case_id("waiting", case))
    images = set(client.datastore()["objects"])

    fetched_id, channels, fingerprint = next_sample_work(client, "first", tmp_path)
    # What Segment copies back out of the nodes the fetch made: float32 voxels, the matrix through VTK's rounding.
    from_nodes = {name: VoxelVolume(volume.array.astype(np.float32), volume.ijk_to_ras + 1e-9)
                  for name, volume in channels.items()}
    events = []
    image_id, label, params, same = segmentation_work(client, "atlas_registration", f"{fetched_id}_t1", from_nodes, tmp_path,
                                                      lambda *event: events.append(event), CancelToken(),
                                                      on_server=(fetched_id, fingerprint))
    assert image_id == fetched_id and same_case(same, fingerprint)
    assert not any("uploading" in str(event) for event in events), events
    assert set(client.datastore()["objects"]) == images  # no copy of the case
    assert len(np.unique(label.array)) > 20
    # The user corrects it and submits: the final label is the fetched image's.
    assert submit_work(client, image_id, label, tmp_path, same) == fetched_id
    datastore = client.datastore()["objects"]
    assert set(datastore) == images and "final" in datastore[fetched_id]["labels"]
    stored = nibabel.load(str(studies / "labels" / "final" / f"{fetched_id}.nii.gz"))
    assert np.array_equal(np.asarray(stored.dataobj).astype(np.uint8).transpose(2, 1, 0), label.array)
    # The strategy no longer offers the labelled case.
    following = client.next_sample("first")
    assert not following or following.get("id") != fetched_id
    # A remembered image that has left the datastore since (deleted on the server): the case is uploaded after all.
    events.clear()
    image_id, _, _, _ = segmentation_work(client, "atlas_registration", "re-sent", from_nodes, tmp_path,
                                          lambda *event: events.append(event), CancelToken(), on_server=("gone", fingerprint))
    assert image_id.startswith("re-sent-") and any("uploading" in str(event) for event in events)
    assert set(client.datastore()["objects"]) == images | {image_id}
