"""A short training from label maps alone (tiny crops, 3 mm, CPU): the loss goes down and the model is saved."""

import json

import numpy as np

from ElastixMonaiLabelLib.resources import resource_path
from lib.synthseg_training import SynthSegTrainingConfig, load_model, segment_volume, train_from_label_maps


def test_loss_decreases_and_the_model_is_published(tmp_path):
    maps = sorted(resource_path("SynthSeg", "label_maps").glob("training_seg_0[12].nii.gz"))
    config = SynthSegTrainingConfig(spacing_mm=3.0, roi=(56, 64, 56), crop=(40, 40, 40), max_iterations=60,
                                    learning_rate=3e-3, seed=1)
    out = tmp_path / "synthseg.pt"
    history = train_from_label_maps(maps, out, resource_path("SynthSeg", "priors"), config)
    losses = history["losses"]
    assert history["iterations"] == 60 and np.isfinite(losses).all()
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    print(f"loss {first:.3f} -> {last:.3f}")
    assert last < 0.9 * first
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["iterations"] == 60 and info["spacing_mm"] == 3.0 and len(info["label_maps"]) == 2
    model = load_model(out)
    labels = segment_volume(model, np.random.default_rng(0).random((30, 34, 30)), roi=(32, 32, 32))
    assert labels.shape == (30, 34, 30) and labels.max() <= 32
