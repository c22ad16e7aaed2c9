"""The elastix executable engine (Debian's elastix 5.0.1 here; SlicerElastix's in Slicer)."""

import os
import shutil
import threading
import time

import itk
import numpy as np
import pytest

from ElastixMonaiLabelLib.registration.engines import ElastixExecutableEngine, make_engine
from ElastixMonaiLabelLib.errors import CancelledError, InputError
from ElastixMonaiLabelLib.synthetic.evaluation import registration_error
from ElastixMonaiLabelLib.data.geometry import voxel_points
from ElastixMonaiLabelLib.data.images import read_volume
from ElastixMonaiLabelLib.runtime.processes import CancelToken
from ElastixMonaiLabelLib.registration.itk_images import register_modality


def _brain_points(subject, reference):
    return voxel_points(reference, itk.array_from_image(itk.imread(str(subject.brain_mask))) > 0)


def test_executable_is_installed():
    # scripts/test.sh installs it; a missing executable must fail loudly, not skip.
    assert shutil.which("elastix") and shutil.which("transformix")
    assert "elastix version" in ElastixExecutableEngine().version()


def test_both_engines_agree_and_are_accurate(subject_3mm):
    reference, moving = read_volume(subject_3mm.path("t1")), read_volume(subject_3mm.path("t2"))
    points = _brain_points(subject_3mm, reference)
    errors = {}
    for engine in ("itk", "executable"):
        result = register_modality(reference, moving, name="t2", engine=engine)
        errors[engine] = registration_error(result.matrix, subject_3mm.truth("t2"), points)
        assert result.report["engine"] == engine
    assert errors["executable"]["mean_mm"] < 0.6 and errors["itk"]["mean_mm"] < 0.6, errors


def test_deformable_preset_improves_atlas_label_overlap(make_subject):
    """Atlas-to-subject (the deformable preset's job): a T1 from one label map onto another subject's T1.

    Runs through the executable engine, so transformix's displacement field is exercised.
    """
    from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label
    from ElastixMonaiLabelLib.data.labels import SYNTHSEG_FREESURFER_IDS
    from ElastixMonaiLabelLib.registration.itk_images import warp_labels

    atlas = make_subject(seed=0, spacing_mm=3.0, max_rotation_deg=0.0, max_translation_mm=0.0)
    subject = make_subject(seed=5, spacing_mm=3.0)
    assert atlas.info["label_map"] != subject.info["label_map"]
    fixed, moving = read_volume(subject.path("t1")), read_volume(atlas.path("t1"))
    atlas_labels = itk.imread(str(atlas.labels), itk.US)
    truth = itk.array_from_image(itk.imread(str(subject.labels)))
    mean_dice = {}
    for preset, engine in (("brain-rigid", "itk"), ("brain-deformable", "executable")):
        result = register_modality(fixed, moving, name="atlas", preset=preset, engine=engine)
        warped = itk.array_from_image(warp_labels(atlas_labels, result.transform, fixed))
        mean_dice[preset] = float(np.mean(list(dice_per_label(warped, truth, SYNTHSEG_FREESURFER_IDS).values())))
    deformable = result
    assert not deformable.is_linear
    assert type(deformable.transform).__name__.startswith("itkDisplacementFieldTransform")
    assert mean_dice["brain-deformable"] > mean_dice["brain-rigid"] + 0.02, mean_dice


def _elastix_processes():
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0].endswith(b"elastix"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def test_cancel_kills_a_running_elastix(subject_3mm):
    reference, moving = read_volume(subject_3mm.path("t1")), read_volume(subject_3mm.path("t2"))
    cancel = CancelToken()
    outcome = {}
    before = set(_elastix_processes())

    def run():
        try:
            register_modality(reference, moving, name="t2", engine="executable", preset="brain-deformable", cancel=cancel)
            outcome["result"] = "finished"
        except CancelledError as error:
            outcome["result"] = error

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 30
    while not (set(_elastix_processes()) - before) and time.time() < deadline:
        time.sleep(0.05)
    assert set(_elastix_processes()) - before, "elastix did not start"
    started = time.time()
    cancel.cancel()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome["result"], CancelledError)
    assert time.time() - started < 5
    assert not (set(_elastix_processes()) - before), "an elastix process survived the cancel"


def test_missing_executable_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="elastix executable not found"):
        ElastixExecutableEngine(elastix=tmp_path / "nope")
    with pytest.raises(InputError, match="unknown engine 'ants'"):
        make_engine("ants")
