"""The ``synthseg`` model's weights: shipped weights serve a fresh install, loading is strict and
tensors-only, and without any weights inference refuses with 409 (not a traceback)."""

import json
import shutil

import nibabel
import numpy as np
import pytest
import torch
from fastapi import HTTPException

from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject
from lib.models.networks import segresnet
from lib.infers.synthseg import SHIPPED_WEIGHTS, ContrastAgnosticSegmentation, shipped_weights
from lib.synthseg.training import SynthSegTrainingConfig, load_model, save_model


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subject")
    generate_subject(SubjectSpec(seed=4, spacing_mm=3.0), folder)
    return folder / "t2.nii.gz"


@pytest.fixture
def weights(tmp_path):
    """Weights as lib.synthseg.train publishes them (here untrained: the loading is under test)."""
    torch.manual_seed(0)
    path = tmp_path / "shipped" / "synthseg.pt"
    save_model(segresnet(1, 8), SynthSegTrainingConfig(spacing_mm=3.0), path, {"iterations": 0})
    return path


def test_shipped_weights_segment_a_fresh_install(tmp_path, weights, case):
    task = ContrastAgnosticSegmentation(tmp_path / "models" / "synthseg" / "model.pt", shipped=weights)
    info = task.info()
    assert info["trained"] is True and info["weights"] == "shipped with the app"
    label_file, params = task({"image": str(case)})
    label, image = nibabel.load(label_file), nibabel.load(str(case))
    assert label.shape == image.shape and np.asarray(label.dataobj).max() <= 32
    np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
    assert params["weights"] == "shipped with the app" and params["channel"] == "image"  # a plain 3D volume
    # A model trained on this server takes over from the shipped one.
    trained = tmp_path / "models" / "synthseg" / "model.pt"
    trained.parent.mkdir(parents=True)
    shutil.copy(weights, trained)
    shutil.copy(weights.with_suffix(".json"), trained.with_suffix(".json"))
    assert task.info()["weights"] == "trained on this server"


def test_without_weights_inference_refuses_with_409(tmp_path, case):
    task = ContrastAgnosticSegmentation(tmp_path / "model.pt", shipped=tmp_path / "absent.pt")
    assert task.info()["trained"] is False
    with pytest.raises(HTTPException, match="has not been trained yet and no weights ship") as error:
        task({"image": str(case)})
    assert error.value.status_code == 409


def test_weights_load_at_their_own_width(tmp_path, weights, case):
    """16 filters (the GPU recipe's width) with a JSON that does not say so (as uploads wrote it): the
    width is the weights' own, for the server and for load_model alike."""
    torch.save(segresnet(1, 16).state_dict(), weights)
    info = json.loads(weights.with_suffix(".json").read_text())
    weights.with_suffix(".json").write_text(json.dumps({k: v for k, v in info.items() if k != "init_filters"}))
    task = ContrastAgnosticSegmentation(tmp_path / "model.pt", shipped=weights)
    label_file, _ = task({"image": str(case)})
    assert nibabel.load(label_file).shape == nibabel.load(str(case)).shape
    assert load_model(weights).convInit.conv.weight.shape[0] == 16


def test_weights_that_do_not_fit_the_network_are_refused(tmp_path, weights, case):
    task = ContrastAgnosticSegmentation(tmp_path / "model.pt", shipped=weights)
    torch.save(segresnet(3, 8).state_dict(), weights)  # a SegResNet, but with 3 channels in
    with pytest.raises(HTTPException, match="do not fit the model's network.*of another shape.*cannot use them") as error:
        task({"image": str(case)})
    assert error.value.status_code == 409
    state = segresnet(1, 8).state_dict()
    state["extra.weight"] = torch.zeros(1)  # strict: an unexpected key is refused too
    torch.save(state, weights)
    with pytest.raises(HTTPException, match="1 unknown \\(extra.weight\\)"):
        task({"image": str(case)})
    torch.save({"model": SynthSegTrainingConfig()}, weights)  # not plain tensors: weights_only refuses to unpickle
    with pytest.raises(HTTPException, match="not a weights-only checkpoint"):
        task({"image": str(case)})


def test_the_weights_setting(tmp_path, weights):
    assert shipped_weights(None) == SHIPPED_WEIGHTS == shipped_weights("")
    assert shipped_weights("none") is None
    assert shipped_weights(str(weights)) == weights
    with pytest.raises(InputError, match="does not exist"):
        shipped_weights(str(tmp_path / "nowhere.pt"))
    weights.with_suffix(".json").unlink()
    with pytest.raises(InputError, match="synthseg.json does not exist"):
        shipped_weights(str(weights))
