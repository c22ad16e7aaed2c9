"""Lib parts the Slicer module relies on: modality names, label table <-> segments, consent, compare views,
training progress."""

import json

import numpy as np
import pytest

from ElastixMonaiLabelLib.client.rest import training_progress
from ElastixMonaiLabelLib.module_support.consent import ConsentStore, server_key
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.workflows.figures import checkerboard
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.modalities import check_modality_names, guess_modality
from ElastixMonaiLabelLib.module_support.segments import default_segments, label_values_for_segments, labelmap_from_masks, segments_from_params


@pytest.mark.parametrize("name, expected", [
    ("BraTS2021_00000_t1", "t1"), ("BraTS2021_00000_t1ce", "t1ce"), ("BraTS2021_00000_flair", "flair"),
    ("BraTS-GLI-00000-000-t1n", "t1"), ("BraTS-GLI-00000-000-t1c", "t1ce"), ("BraTS-GLI-00000-000-t2w", "t2"),
    ("BraTS-GLI-00000-000-t2f", "flair"), ("sub-OAS30001_ses-d0129_acq-TSE_T2w", "t2"),
    ("sub-OAS30001_ses-d0129_run-01_T1w", "t1"), ("AX T2 FLAIR", "flair"), ("T2-FLAIR_3mm", "flair"),
    ("T1 post contrast", "t1ce"), ("t1_mprage_sag_p2_iso", "t1"), ("3DFLAIRSAG", "flair"), ("MPRAGE", "t1"),
    ("t2_registered", "t2"), ("Segmentation", None), ("MRHead", None),
])
def test_modality_is_guessed_from_node_names(name, expected):
    assert guess_modality(name) == expected


def test_default_segments_are_the_label_table_with_colours_in_0_1():
    segments = default_segments()
    assert [s.value for s in segments] == list(range(1, 33))
    assert segments[0].name == "Left-Cerebral-White-Matter" and segments[0].freesurfer_id == 2
    hippocampus = next(s for s in segments if s.name == "Left-Hippocampus")
    assert hippocampus.color == pytest.approx((220 / 255, 216 / 255, 20 / 255))


def test_segments_from_server_params_keep_the_servers_names_and_colours():
    params = {"label_table": [{"value": 1, "name": "Left-Hippocampus", "color": [220, 216, 20]},
                              {"value": 2, "name": "Lesion", "color": [255, 0, 0]}]}
    segments = segments_from_params(params, present_values=[0, 1, 2, 7])
    assert [(s.value, s.name) for s in segments] == [(1, "Left-Hippocampus"), (2, "Lesion"), (7, "Label 7")]
    assert segments[1].color == (1.0, 0.0, 0.0)
    # Upstream convention (names only): colours come from the project table by name.
    upstream = segments_from_params({"label_names": {"background": 0, "Brain-Stem": 3}})
    assert [(s.value, s.name) for s in upstream] == [(3, "Brain-Stem")]
    assert upstream[0].color == pytest.approx((119 / 255, 159 / 255, 176 / 255))
    assert len(segments_from_params(None)) == 32


def test_edited_segments_go_back_with_the_table_values():
    shape = (4, 5, 6)
    masks = {"Left-Hippocampus": np.zeros(shape, bool), "brain-stem": np.zeros(shape, bool)}
    masks["Left-Hippocampus"][1, 1, 1] = True
    masks["brain-stem"][2, 2:4, 2] = True
    labelmap = labelmap_from_masks(masks)
    values = {s.name: s.value for s in SYNTHSEG_STRUCTURES}
    assert labelmap[1, 1, 1] == values["Left-Hippocampus"] and (labelmap[2, 2:4, 2] == values["Brain-Stem"]).all()
    assert labelmap.dtype == np.uint8 and np.count_nonzero(labelmap) == 3
    with pytest.raises(InputError, match="Tumour"):
        label_values_for_segments(["Left-Hippocampus", "Tumour"])
    with pytest.raises(InputError, match="empty"):
        labelmap_from_masks({"CSF": np.zeros(shape, bool)})


def test_consent_is_remembered_per_server(tmp_path):
    store = ConsentStore(tmp_path / "settings" / "consent.json")
    assert not store.granted("localhost:8000")
    store.grant("localhost:8000/")
    assert store.granted("http://localhost:8000") and store.granted("HTTP://LOCALHOST:8000")
    assert not store.granted("localhost:8001") and not store.granted("https://localhost:8000")
    assert server_key("example.org") == "http://example.org:80"
    # A new store over the same file remembers; revoking forgets.
    assert ConsentStore(store.path).servers() == ["http://localhost:8000"]
    store.revoke("http://localhost:8000")
    assert not store.granted("localhost:8000")
    # A damaged record means asking again, never assuming consent.
    store.path.write_text("{broken")
    assert not store.granted("localhost:8000")


def test_checkerboard_alternates_blocks_of_each_volume():
    rng = np.random.default_rng(0)
    first = rng.random((8, 8, 8)).astype(np.float32)  # values 0..1
    second = 1000 + 500 * rng.random((8, 8, 8)).astype(np.float32)  # another contrast, another range
    board = checkerboard(first, second, squares=2)
    from_second = np.abs(board - (second - 1000) / 500) < 0.05
    from_first = np.abs(board - first) < 0.05
    assert from_first[:4, :4, :4].mean() > 0.9 and from_second[4:, :4, :4].mean() > 0.9
    assert from_first[4:, 4:, :4].mean() > 0.9 and from_second[4:, 4:, 4:].mean() > 0.9
    assert board.min() >= 0 and board.max() <= 1
    with pytest.raises(ValueError, match="one grid"):
        checkerboard(first, second[:4])


def test_training_progress_reads_monai_label_status():
    running = {"status": "RUNNING", "details": ["Epoch: 3/10, Iter: 1/2 -- train_loss: 0.9", "Epoch[3] Metrics -- x"]}
    assert training_progress(running) == (0.3, "training: epoch 3 of 10")
    assert training_progress({"status": "RUNNING", "details": ["Epoch[2] Complete."]}, max_epochs=4)[0] == 0.5
    assert training_progress({"status": "DONE"}) == (1.0, "training finished")
    assert training_progress({"status": "ERROR", "details": ["Epoch: 2/9, Iter: 1/1"]}) == (None, "training error at epoch 2")
    assert training_progress({})[0] is None
    json.dumps(training_progress(running))


def test_modality_names_of_a_case_are_checked():
    assert check_modality_names(["T1w", "T2w", "FLAIR"]) == ["t1", "t2", "flair"]
    with pytest.raises(InputError, match="repeated: t1"):
        check_modality_names(["t1", "T1w"])
    with pytest.raises(InputError, match="not a usable modality name"):
        check_modality_names(["t1", ""])
    with pytest.raises(InputError, match="not a usable modality name"):
        check_modality_names(["t1", "t2 flair"])
