"""The trainable ``segmentation`` model through the real server: refuse, train, publish, infer.

Tiny on purpose (3 cases at 3 mm, 2 epochs): this checks the machinery, not the accuracy.
"""

import shutil

import nibabel
import numpy as np
import pytest

from ElastixMonaiLabelLib.client.rest import ServerError, training_progress
from ElastixMonaiLabelLib.workflows.prepare import prepare_dataset
from ElastixMonaiLabelLib.client.local_server import LocalServer


@pytest.fixture(scope="module")
def server(make_subject, tmp_path_factory):
    source = tmp_path_factory.mktemp("labelled")
    for index, seed in enumerate((40, 41, 42)):
        subject = make_subject(seed=seed, spacing_mm=3.0)
        case = source / f"case-{index}"
        case.mkdir()
        for modality in ("t1", "t2", "flair"):
            shutil.copy(subject.path(modality), case / f"case-{index}_{modality}.nii.gz")
        shutil.copy(subject.labels, case / f"case-{index}_synthseg.nii.gz")  # FreeSurfer ids, as SynthSeg writes
    studies = tmp_path_factory.mktemp("datastore")
    assert prepare_dataset(source, studies, label_pattern="*_synthseg.nii.gz")["done"] == ["case-0", "case-1", "case-2"]
    # synthseg_weights none: the synthseg test starts from "no weights" even where weights ship with the app.
    local = LocalServer(studies, conf={"atlases": "1", "atlas_spacing": "3", "cache": str(tmp_path_factory.mktemp("cache")),
                                       "synthseg_weights": "none"})
    client = local.start()
    yield client, studies
    local.stop()


def test_untrained_model_is_listed_and_refuses_with_advice(server, tmp_path):
    client, _ = server
    model = client.info()["models"]["segmentation"]
    assert model["trained"] is False and model["channels"] == {"all_of": ["t1", "t2", "flair"]}
    with pytest.raises(ServerError, match="has not been trained yet") as error:
        client.infer("segmentation", "case-0", tmp_path / "x.nii.gz")
    assert error.value.status == 409


def test_train_publishes_a_model_that_inference_then_uses(server, tmp_path):
    client, studies = server
    client.train_start("segmentation", {"max_epochs": 2})
    status = client.wait_for_training(timeout=300)
    assert status["status"] == "DONE", status
    assert training_progress(status) == (1.0, "training finished")
    # The module reads progress from the log lines MONAI Label keeps: the real ones say 'Epoch: 2/2'.
    assert training_progress({**status, "status": "RUNNING"}) == (1.0, "training: epoch 2 of 2"), status.get("details")
    info = client.info()
    stats = info["train_stats"]["segmentation"]
    assert stats["total_epochs"] == 2 and "val_mean_dice" in stats["eval"]["metrics"]
    assert info["models"]["segmentation"]["trained"] is True

    result = client.infer("segmentation", "case-1", tmp_path / "label.nii.gz")
    label, case = nibabel.load(str(result.label_path)), nibabel.load(str(studies / "case-1.nii.gz"))
    assert label.shape == case.shape[:3]
    np.testing.assert_allclose(label.affine, case.affine, atol=1e-4)
    assert np.asarray(label.dataobj).max() <= 32
    assert result.params["model"] == "segmentation" and len(result.params["label_table"]) == 32


def test_upload_then_a_case_without_the_model_channels_is_refused(server, make_subject, tmp_path):
    from ElastixMonaiLabelLib.data.images import read_volume
    from ElastixMonaiLabelLib.data.multimodal import write_case

    client, studies = server
    single = write_case({"t1": read_volume(make_subject(seed=40, spacing_mm=3.0).path("t1"))}, tmp_path / "t1-only.nii.gz")
    assert client.upload_image(single, image_id="t1-only") == "t1-only"
    assert "t1-only" in client.datastore()["objects"]
    before = sorted(p.name for p in studies.iterdir())
    with pytest.raises(ServerError, match="needs channels t1,t2,flair.*missing t2,flair") as error:
        client.infer("segmentation", "t1-only", tmp_path / "x.nii.gz")
    assert error.value.status == 422
    assert sorted(p.name for p in studies.iterdir()) == before  # nothing written or lost
    # The atlas model takes the same one-channel case.
    assert client.infer("atlas_registration", "t1-only", tmp_path / "atlas.nii.gz").label_path.exists()


def test_registration_labels_join_training_only_when_configured(server, tmp_path):
    """A real LocalDatastore with one final and one atlas-made ("original") label, in the server's environment."""
    import subprocess
    import textwrap

    from ElastixMonaiLabelLib.client.local_server import default_app, default_python

    _, studies = server
    store = tmp_path / "store"
    store.mkdir()
    for case in ("case-0", "case-1"):
        shutil.copy(studies / f"{case}.nii.gz", store / f"{case}.nii.gz")
    (store / "labels" / "final").mkdir(parents=True)
    (store / "labels" / "original").mkdir(parents=True)
    shutil.copy(studies / "labels" / "final" / "case-0.nii.gz", store / "labels" / "final" / "case-0.nii.gz")
    shutil.copy(studies / "labels" / "final" / "case-1.nii.gz", store / "labels" / "original" / "case-1.nii.gz")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(default_app())!r})
        from pathlib import Path
        from monailabel.datastore.local import LocalDatastore
        from lib.trainers.segmentation import MultimodalSegmentationTrainer
        store = LocalDatastore({str(store)!r}, extensions=["*.nii.gz"], auto_reload=False)
        for flag in (False, True):
            trainer = MultimodalSegmentationTrainer(Path({str(tmp_path)!r}), ["t1", "t2", "flair"], Path({str(tmp_path / 'm.pt')!r}),
                                                    use_registration_labels=flag)
            print(flag, sorted(Path(d["label"]).parent.name for d in trainer.training_datalist(store)))
    """)
    completed = subprocess.run([str(default_python()), "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.splitlines()[-2:] == ["False ['final']", "True ['final', 'original']"]


def test_synthseg_trains_from_label_maps_alone_and_segments_any_contrast(server, tmp_path):
    client, studies = server
    assert client.info()["models"]["synthseg"]["trained"] is False
    with pytest.raises(ServerError, match="synthseg model has not been trained") as error:
        client.infer("synthseg", "case-0", tmp_path / "x.nii.gz")
    assert error.value.status == 409
    # No labelled image is needed; here the datastore's labelled cases join in for half of the
    # iterations (a few, 3 mm).
    client.train_start("synthseg", {"max_iterations": 3, "spacing_mm": 3, "real_fraction": 0.5})
    status = client.wait_for_training(timeout=600)
    assert status["status"] == "DONE", status
    info = client.info()
    assert info["models"]["synthseg"]["trained"] is True
    stats = info["train_stats"]["synthseg"]
    assert stats["iterations"] == 3 and stats["real_image_iterations"] >= 1, stats
    assert any(entry.endswith(":flair") for entry in stats["real_images"])  # every channel of a labelled case
    for channel in ("t2", "flair"):
        result = client.infer("synthseg", "case-2", tmp_path / f"{channel}.nii.gz", params={"channel": channel})
        label, case = nibabel.load(str(result.label_path)), nibabel.load(str(studies / "case-2.nii.gz"))
        assert label.shape == case.shape[:3] and result.params["channel"] == channel
        np.testing.assert_allclose(label.affine, case.affine, atol=1e-4)
        assert np.asarray(label.dataobj).max() <= 32
