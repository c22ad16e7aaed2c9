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
from ElastixMonaiLabelLib.sampledata import SubjectSpec, generate_subject
from lib.synthseg_tasks import SHIPPED_WEIGHTS, ContrastAgnosticSegmentation, shipped_weights
from lib.synthseg_training import SynthSegTrainingConfig, save_model, synthseg_network


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subject")
    generate_subject(SubjectSpec(seed=4, spacing_mm=3.0), folder)
    return folder / "t2.nii.gz"


@pytest.fixture
def weights(tmp_path):
    """Weights as lib.train_synthseg publishes them (here untrained: the loading is under test)."""
    torch.manual_seed(0)
    path = tmp_path / "shipped" / "synthseg.pt"
    save_model(synthseg_network(8), SynthSegTrainingConfig(spacing_mm=3.0), path, {"iterations": 0})
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


def test_weights_that_do_not_fit_the_network_are_refused(tmp_path, weights, case):
    task = ContrastAgnosticSegmentation(tmp_path / "model.pt", shipped=weights)
    info = json.loads(weights.with_suffix(".json").read_text())
    weights.with_suffix(".json").write_text(json.dumps({**info, "init_filters": 16}))  # the JSON says another width
    with pytest.raises(HTTPException, match="cannot be used: Error\\(s\\) in loading state_dict") as error:
        task({"image": str(case)})
    assert error.value.status_code == 409
    weights.with_suffix(".json").write_text(json.dumps(info))
    state = torch.load(weights, weights_only=True)
    state["extra.weight"] = torch.zeros(1)  # strict: an unexpected key is refused too
    torch.save(state, weights)
    with pytest.raises(HTTPException, match="Unexpected key"):
        task({"image": str(case)})
    torch.save({"model": SynthSegTrainingConfig()}, weights)  # not plain tensors: weights_only refuses to unpickle
    with pytest.raises(HTTPException, match="cannot be used"):
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
