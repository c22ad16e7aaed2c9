"""A short training from label maps alone (tiny crops, 3 mm, CPU): the loss goes down and the model is saved."""

import json

import numpy as np
import torch

from ElastixMonaiLabelLib.runtime.resources import resource_path
from lib.synthseg.training import SynthSegTrainingConfig, load_model, segment_file, segment_volume, train_from_label_maps


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


def test_training_mixes_in_the_datastores_labelled_images(tmp_path):
    from ElastixMonaiLabelLib.data.images import read_volume, write_volume, image_from_array
    from ElastixMonaiLabelLib.data.labels import freesurfer_to_values
    from ElastixMonaiLabelLib.data.multimodal import write_case
    from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject
    from lib.synthseg.training import real_image_transforms

    import itk

    subject = tmp_path / "subject"
    generate_subject(SubjectSpec(seed=3, spacing_mm=3.0), subject)
    case = write_case({"t1": read_volume(subject / "t1.nii.gz")}, tmp_path / "case.nii.gz")
    labels = read_volume(subject / "labels.nii.gz", pixel_type="short")
    label_file = write_volume(image_from_array(freesurfer_to_values(itk.array_from_image(labels)), labels),
                              tmp_path / "label.nii.gz")
    config = SynthSegTrainingConfig(spacing_mm=3.0, max_iterations=8, real_fraction=0.5, seed=2)
    item = {"image": str(case), "channel": "t1", "label": str(label_file)}

    # A real sample looks like a synthetic one: the head box at 3 mm, intensities 0..1, values 0..32.
    sample = real_image_transforms(config)(dict(item))
    assert tuple(sample["image"].shape) == (1, *config.roi) == tuple(sample["label"].shape)
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert int(sample["label"].max()) == 32 and len(np.unique(sample["label"].numpy())) == 33

    maps = sorted(resource_path("SynthSeg", "label_maps").glob("training_seg_01.nii.gz"))
    out = tmp_path / "mixed.pt"
    history = train_from_label_maps(maps, out, resource_path("SynthSeg", "priors"), config, real_images=[item])
    assert history["iterations"] == 8 and 1 <= history["real_image_iterations"] <= 7
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["real_fraction"] == 0.5 and info["real_images"] == [f"{case}:t1"]


class _Threshold(torch.nn.Module):
    """A stand-in network for geometry only: label 1 where the (0..1 scaled) image is bright."""

    def forward(self, image):
        logits = torch.zeros(image.shape[0], 33, *image.shape[2:])
        logits[:, 1] = image[:, 0] - 0.5
        return logits


def test_segment_file_returns_labels_on_the_files_own_grid(tmp_path):
    """An oblique, LIA-oriented 1 mm volume with an off-centre box: segmented at 2 mm in RAS, the
    labels come back on the file's grid, where the box is."""
    import nibabel

    shape = (60, 50, 40)
    volume = np.zeros(shape, dtype=np.float32)
    volume[8:30, 20:41, 5:18] = 100.0  # off-centre and asymmetric: a flipped or shifted axis misses it
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    lia = np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)  # FreeSurfer's conformed orientation
    affine = np.eye(4)
    affine[:3, :3] = rotation @ lia
    affine[:3, 3] = [30.0, -12.0, 25.0]
    path = tmp_path / "box.nii.gz"
    nibabel.save(nibabel.Nifti1Image(volume, affine), str(path))
    labels = segment_file(_Threshold().eval(), path, spacing=2.0)
    assert labels.shape == shape
    box = volume > 0
    dice = 2 * np.logical_and(labels == 1, box).sum() / ((labels == 1).sum() + box.sum())
    assert dice > 0.85, dice
