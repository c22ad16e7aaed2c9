"""The library the Slicer module runs on, outside Slicer: NIfTI with numpy alone, volumes as arrays, the generated
subject, registration of arrays by the elastix executable (the module's no-install path) and by the core's command
line (engine itk), the inputs table, the job board, the optional-package check, the parent-transform algebra."""

import shutil
import sys
import time

import itk
import nibabel
import numpy as np
import pytest

from ElastixMonaiLabelLib.registration.voxel_arrays import (
    RegistrationRequest,
    check_request,
    choose_engine,
    registration_work,
)
from ElastixMonaiLabelLib.errors import CancelledError, InputError
from ElastixMonaiLabelLib.data.geometry import from_parent_under, image_ijk_to_ras
from ElastixMonaiLabelLib.data.images import grid_mismatch
from ElastixMonaiLabelLib.module_support.inputs_table import InputsTable, case_channels, edit_inputs, guess_reference_modality, use_case
from ElastixMonaiLabelLib.runtime.jobs import JobBoard, JobEvent, ThreadJob
from ElastixMonaiLabelLib.data.multimodal import read_case, read_case_volumes, write_case, write_case_volumes
from ElastixMonaiLabelLib.data.nifti import read_nifti, write_nifti
from ElastixMonaiLabelLib.runtime.processes import CancelToken
from ElastixMonaiLabelLib.module_support.python_packages import missing_requirements, read_requirements
from ElastixMonaiLabelLib.synthetic.quick_subject import make_quick_subject
from ElastixMonaiLabelLib.runtime.resources import resource_path
from ElastixMonaiLabelLib.synthetic.sample_data import rigid_matrix
from ElastixMonaiLabelLib.module_support.server_work import (
    TrainingRun,
    case_fingerprint,
    describe_model,
    same_case,
    segmentation_models,
    submit_work,
    trainer_for,
)
from ElastixMonaiLabelLib.registration.similarity import similarity_verdict
from ElastixMonaiLabelLib.data.voxels import VoxelVolume, resample
from oblique_grids import oblique_matrix

ELASTIX, TRANSFORMIX = shutil.which("elastix"), shutil.which("transformix")


@pytest.fixture(scope="module")
def quick():
    return make_quick_subject(seed=3)


def executable_request(quick, tmp_path, **options):
    return RegistrationRequest(quick.volumes["t1"], [quick.volumes["t2"], quick.volumes["flair"]], ["t1", "t2", "flair"],
                               tmp_path, engine="executable", elastix=ELASTIX, transformix=TRANSFORMIX, **options)


def events_of(log):
    return lambda fraction, message="", kind="progress": log.append(JobEvent(kind, message, fraction))


# -- NIfTI without nibabel -----------------------------------------------------------------------------------

@pytest.mark.parametrize("left_handed", [False, True], ids=["right-handed", "mirrored"])
@pytest.mark.parametrize("name", ["volume.nii.gz", "volume.nii"])
def test_nifti_written_with_numpy_reads_the_same_in_nibabel_and_itk(tmp_path, left_handed, name):
    matrix = oblique_matrix(left_handed)
    voxels = np.random.default_rng(0).random((7, 6, 5)).astype(np.float32)  # (k, j, i)
    path = write_nifti(tmp_path / name, voxels, matrix, "channels=t1")
    loaded = nibabel.load(str(path))
    np.testing.assert_allclose(loaded.affine, matrix, atol=1e-5)
    np.testing.assert_allclose(loaded.get_qform(), matrix, atol=1e-4)  # the qform agrees: readers that prefer it agree
    assert np.array_equal(np.asarray(loaded.dataobj).transpose(2, 1, 0), voxels)
    image = itk.imread(str(path))
    np.testing.assert_allclose(image_ijk_to_ras(image), matrix, atol=1e-4)
    assert np.array_equal(itk.array_view_from_image(image), voxels)
    again = read_nifti(path)
    assert again.descrip == "channels=t1" and np.array_equal(again.array, voxels)
    np.testing.assert_allclose(again.ijk_to_ras, matrix, atol=1e-5)
    # Files written by ITK (sform and qform) and by nibabel with a qform only read back the same.
    itk.imwrite(image, str(tmp_path / "by-itk.nii.gz"))
    np.testing.assert_allclose(read_nifti(tmp_path / "by-itk.nii.gz").ijk_to_ras, matrix, atol=1e-4)
    qform_only = nibabel.Nifti1Image(voxels.transpose(2, 1, 0), None)
    qform_only.set_qform(matrix, code=1)
    nibabel.save(qform_only, str(tmp_path / "qform.nii"))
    np.testing.assert_allclose(read_nifti(tmp_path / "qform.nii").ijk_to_ras, matrix, atol=1e-4)


def test_nifti_refuses_bad_files_by_name(tmp_path):
    good = write_nifti(tmp_path / "good.nii", np.ones((3, 3, 3), np.float32), np.eye(4))
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(good.read_bytes()[:-10])
    nan = write_nifti(tmp_path / "nan.nii", np.full((3, 3, 3), np.nan, np.float32), np.eye(4))
    (tmp_path / "text.nii").write_text("not an image at all, but long enough to have a header" * 10)
    for path, problem in ((truncated, "truncated"), (nan, "NaN"), (tmp_path / "text.nii", "not a single-file NIfTI"),
                          (tmp_path / "missing.nii", "not found")):
        with pytest.raises(InputError, match=problem) as error:
            read_nifti(path)
        assert str(path) in str(error.value)


def test_case_volumes_follow_the_multimodal_contract_both_ways(tmp_path, quick):
    channels = {"T1w": quick.volumes["t1"], "T2w": quick.volumes["t2"]}
    written = write_case_volumes(channels, tmp_path / "case.nii.gz")
    read_back = read_case(written)  # the core's reader (nibabel, itk)
    assert list(read_back) == ["t1", "t2"]
    assert np.array_equal(itk.array_view_from_image(read_back["t2"]), quick.volumes["t2"].array)
    np.testing.assert_allclose(image_ijk_to_ras(read_back["t1"]), quick.volumes["t1"].ijk_to_ras, atol=1e-4)
    write_case({"t1": read_back["t1"], "flair": read_back["t2"]}, tmp_path / "core.nii.gz")  # the core's writer
    volumes = read_case_volumes(tmp_path / "core.nii.gz")
    assert list(volumes) == ["t1", "flair"] and np.array_equal(volumes["flair"].array, quick.volumes["t2"].array)
    off_grid = VoxelVolume(quick.volumes["t2"].array, quick.volumes["t2"].ijk_to_ras.copy())
    off_grid.ijk_to_ras[0, 3] += 7.0
    with pytest.raises(InputError, match="t2: is not on the reference grid"):
        write_case_volumes({"t1": quick.volumes["t1"], "t2": off_grid}, tmp_path / "bad.nii.gz")


# -- volumes as arrays ---------------------------------------------------------------------------------------

def test_voxel_volume_answers_the_itk_getters_and_resamples_like_itk(tmp_path):
    rng = np.random.default_rng(1)
    moving = VoxelVolume(rng.random((12, 14, 10)).astype(np.float32), oblique_matrix())
    reference = VoxelVolume(np.zeros((9, 11, 8), np.float32), oblique_matrix(left_handed=True))
    reference.ijk_to_ras[:3, 3] += [3.0, -2.0, 1.0]
    moving_image = itk.imread(str(write_nifti(tmp_path / "m.nii", moving.array, moving.ijk_to_ras)))
    reference_image = itk.imread(str(write_nifti(tmp_path / "r.nii", reference.array, reference.ijk_to_ras)))
    np.testing.assert_allclose(moving.GetSpacing(), moving_image.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(moving.GetOrigin(), moving_image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(moving.GetDirection(), np.array(moving_image.GetDirection()).reshape(3, 3), atol=1e-5)
    assert tuple(moving.GetLargestPossibleRegion().GetSize()) == tuple(moving_image.GetLargestPossibleRegion().GetSize())
    assert grid_mismatch(reference, reference_image) is None and grid_mismatch(moving, reference) is not None
    # A rigid motion (LPS, reference -> moving points) applied by scipy here and by ITK's resampler agree.
    motion = rigid_matrix(np.radians([4.0, -6.0, 3.0]), np.array([2.0, -1.5, 0.5]), np.array(reference.GetOrigin()))
    ours = resample(moving, reference, motion, order=1)
    transform = itk.AffineTransform[itk.D, 3].New()
    transform.SetMatrix(itk.matrix_from_array(motion[:3, :3]))
    transform.SetTranslation(motion[:3, 3].tolist())
    theirs = itk.array_from_image(itk.resample_image_filter(moving_image, transform=transform, use_reference_image=True,
                                                            reference_image=reference_image, default_pixel_value=0))
    inside = (ours != 0) & (theirs != 0)
    assert inside.sum() > 50
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=1e-4)


def test_quick_subject_is_reproducible_and_knows_its_truth(quick):
    again = make_quick_subject(seed=3)
    assert np.array_equal(again.volumes["flair"].array, quick.volumes["flair"].array)
    assert list(quick.volumes) == ["t1", "t2", "flair"] and np.array_equal(quick.truth_lps["t1"], np.eye(4))
    assert not np.allclose(quick.truth_lps["t2"], np.eye(4)) and quick.brain_mask.array.sum() > 1000
    # Contrasts: CSF dark in T1 and FLAIR, bright in T2; the generated volumes are not copies of one another.
    assert np.corrcoef(quick.volumes["t1"].array.ravel(), quick.volumes["t2"].array.ravel())[0, 1] < 0.9
    # A volume placed by exactly the inverse of its motion is aligned; one left where it is, is not.
    assert quick.alignment_error("t2", np.linalg.inv(_ras(quick.truth_lps["t2"])))["max_mm"] < 1e-6
    assert quick.alignment_error("t2", np.eye(4))["mean_mm"] > 3.0


def _ras(matrix_lps):
    from ElastixMonaiLabelLib.data.geometry import lps_to_ras_transform

    return lps_to_ras_transform(matrix_lps)


# -- registration of arrays -----------------------------------------------------------------------------------

def test_executable_engine_registers_arrays_accurately_without_itk_in_process(quick, tmp_path):
    events = []
    outcomes = registration_work(executable_request(quick, tmp_path), events_of(events), CancelToken())
    assert [o.modality for o in outcomes] == ["t2", "flair"]
    for outcome in outcomes:
        error = quick.alignment_error(outcome.modality, np.linalg.inv(_ras(outcome.matrix_lps)))
        # A quarter of the 3 mm voxel. The FLAIR of these small 3 mm subjects is the hard pair: brain-rigid
        # misses it by 0.56-0.61 mm (seeds 3-5), its previous version by 0.36-0.63, elastix's default map by
        # 0.83-1.03; at 1 and 2 mm the floors are tighter (test_registration_accuracy, benchmarks/registration.py).
        assert error["mean_mm"] < 0.75, (outcome.modality, error)
        report = outcome.report
        assert report["engine"] == "executable" and report["metric_improved"] and report["metric_after"] > report["metric_before"]
        assert outcome.registered.array.shape == quick.volumes["t1"].array.shape
        assert grid_mismatch(outcome.registered, quick.volumes["t1"]) is None
    fractions = [e.fraction for e in events if e.kind == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(e.kind == "log" and "Resolution" in e.message for e in events)  # elastix's own log reaches the GUI


def test_slicer_path_needs_neither_itk_nor_nibabel(tmp_path):
    """What runs in Slicer's own Python (numpy and scipy only): generate, register with the executables, write and
    read a case. itk and nibabel are made unimportable in a fresh interpreter to prove it."""
    script = f"""
import sys
sys.modules["itk"] = sys.modules["nibabel"] = None  # any import of them now raises ImportError
from pathlib import Path
import numpy as np
from ElastixMonaiLabelLib.registration.voxel_arrays import RegistrationRequest, registration_work
from ElastixMonaiLabelLib.data.geometry import lps_to_ras_transform
from ElastixMonaiLabelLib.data.multimodal import read_case_volumes, write_case_volumes
from ElastixMonaiLabelLib.runtime.processes import CancelToken
from ElastixMonaiLabelLib.synthetic.quick_subject import make_quick_subject
subject = make_quick_subject(seed=5)
(outcome,) = registration_work(RegistrationRequest(subject.volumes["t1"], [subject.volumes["flair"]], ["t1", "flair"],
    Path({str(tmp_path)!r}) / "work", engine="executable", elastix={ELASTIX!r}, transformix={TRANSFORMIX!r}),
    lambda *event: None, CancelToken())
error = subject.alignment_error("flair", np.linalg.inv(lps_to_ras_transform(outcome.matrix_lps)))
case = write_case_volumes({{"t1": subject.volumes["t1"], "flair": outcome.registered}}, Path({str(tmp_path)!r}) / "case.nii.gz")
print(round(error["mean_mm"], 3), list(read_case_volumes(case)))
"""
    import subprocess

    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    error, names = run.stdout.split(" ", 1)
    assert float(error) < 1.0 and names.strip() == "['t1', 'flair']"  # 3 mm voxels: the self-test's bound


def test_both_engines_agree(quick, tmp_path):
    by_executable = registration_work(executable_request(quick, tmp_path / "executable"), events_of([]), CancelToken())
    by_itk = registration_work(RegistrationRequest(
        quick.volumes["t1"], [quick.volumes["t2"], quick.volumes["flair"]], ["t1", "t2", "flair"], tmp_path / "itk",
        engine="itk", python=sys.executable), events_of([]), CancelToken())
    for ours, core in zip(by_executable, by_itk):
        assert ours.modality == core.modality and core.report["engine"] == "itk"
        difference = quick.alignment_error(ours.modality, np.linalg.inv(_ras(ours.matrix_lps)))["mean_mm"] - \
            quick.alignment_error(core.modality, np.linalg.inv(_ras(core.matrix_lps)))["mean_mm"]
        assert abs(difference) < 0.1
        assert abs(ours.report["metric_after"] - core.report["metric_after"]) < 0.01


def test_executable_engine_with_a_mask_and_with_a_deformable_preset(quick, tmp_path):
    mask = VoxelVolume(quick.brain_mask.array, quick.brain_mask.ijk_to_ras)
    (masked,) = registration_work(RegistrationRequest(quick.volumes["t1"], [quick.volumes["t2"]], ["t1", "t2"], tmp_path / "mask",
                                                      engine="executable", elastix=ELASTIX, transformix=TRANSFORMIX, mask=mask),
                                  events_of([]), CancelToken())
    assert masked.report["metric_region"] == "reference mask" and masked.report["metric_improved"]
    assert quick.alignment_error("t2", np.linalg.inv(_ras(masked.matrix_lps)))["mean_mm"] < 0.5
    request = RegistrationRequest(quick.volumes["t1"], [quick.volumes["t2"]], ["t1", "t2"], tmp_path / "bspline",
                                  preset="brain-deformable", engine="executable", elastix=ELASTIX, transformix=TRANSFORMIX)
    (outcome,) = registration_work(request, events_of([]), CancelToken())
    assert not any((tmp_path / "bspline").iterdir())  # the work folder is gone; the results are in memory
    assert outcome.matrix_lps is None and outcome.field.name == "deformationField.mhd"
    assert outcome.report["transform_kind"] == "displacement_field" and outcome.report["stages"][-1] == "BSplineTransform"
    assert outcome.report["metric_after"] > outcome.report["metric_before"]
    assert outcome.registered.array.shape == quick.volumes["t1"].array.shape  # transformix's result.mhd, read
    (tmp_path / "field").mkdir()
    field = itk.imread(str(outcome.field.write(tmp_path / "field")))  # what Slicer's transform reader gets
    assert itk.array_view_from_image(field).shape == (*quick.volumes["t1"].array.shape, 3)
    assert np.abs(itk.array_view_from_image(field)).max() > 1.0  # a real displacement (t2 is moved by several mm)


def test_identical_volumes_are_not_flagged_as_failed(quick, tmp_path):
    """A reference registered to itself (BraTS volumes, a fetched case: already aligned) barely moves, and interpolation
    alone lowers NMI from its maximum: the array path must not call that a failure, as the core's itk path does not."""
    t1 = quick.volumes["t1"]
    (outcome,) = registration_work(RegistrationRequest(t1, [VoxelVolume(t1.array.copy(), t1.ijk_to_ras)], ["t1", "t1_copy"],
                                                       tmp_path, engine="executable", elastix=ELASTIX, transformix=TRANSFORMIX),
                                   events_of([]), CancelToken())
    report = outcome.report
    assert report["already_aligned"] and report["start_displacement_mm"] < 0.1 * 3.0
    assert report["metric_improved"], report  # what the widget reads to say "the registration has probably failed"
    # The same verdict (one function for both paths): a drop is a failure unless the result stayed at the start.
    moved = np.eye(4)
    moved[:3, 3] = [2.0, 0.0, 0.0]
    assert not similarity_verdict(1.5, 1.4, "reference foreground", moved, t1)["metric_improved"]
    assert similarity_verdict(1.5, 1.4, "reference foreground", np.eye(4), t1)["metric_improved"]
    assert not similarity_verdict(1.5, 1.4, "reference foreground", None, t1)["metric_improved"]  # deformable: no exemption


def test_registration_requests_are_checked_before_any_work(quick, tmp_path):
    with pytest.raises(InputError, match="repeated: t2"):
        check_request(RegistrationRequest(quick.volumes["t1"], [quick.volumes["t2"]], ["t2", "T2w"], tmp_path,
                                          elastix=ELASTIX, transformix=TRANSFORMIX))
    shifted = VoxelVolume(quick.brain_mask.array, quick.brain_mask.ijk_to_ras.copy())
    shifted.ijk_to_ras[2, 3] += 9.0
    with pytest.raises(InputError, match="brain mask: is not on the reference grid"):
        check_request(executable_request(quick, tmp_path, mask=shifted))
    with pytest.raises(InputError, match="unknown preset 'fastest'"):
        check_request(executable_request(quick, tmp_path, preset="fastest"))
    with pytest.raises(InputError, match="needs the elastix and transformix executables"):
        check_request(RegistrationRequest(quick.volumes["t1"], [quick.volumes["t2"]], ["t1", "t2"], tmp_path))
    assert not any(tmp_path.iterdir())


def test_auto_engine_falls_back_to_itk_elastix_when_slicer_elastix_is_missing():
    assert choose_engine("auto", executables_found=True) == "executable"
    assert choose_engine("auto", executables_found=False) == "itk"  # ElastixLogic raised ValueError('Elastix not found')
    assert choose_engine("itk", executables_found=True) == "itk"
    with pytest.raises(InputError, match="install the SlicerElastix extension"):
        choose_engine("executable", executables_found=False)
    with pytest.raises(InputError, match="unknown engine 'fast'"):
        choose_engine("fast", executables_found=True)


def test_cancel_stops_the_registration_and_its_elastix(quick, tmp_path):
    job = ThreadJob(lambda report, cancel: registration_work(
        RegistrationRequest(quick.volumes["t1"], [quick.volumes["t2"]], ["t1", "t2"], tmp_path, preset="brain-deformable",
                            engine="executable", elastix=ELASTIX, transformix=TRANSFORMIX), report, cancel))
    deadline = time.monotonic() + 60
    while not any(e.kind == "log" for e in job.poll()) and time.monotonic() < deadline:
        time.sleep(0.05)  # elastix has started once it logs
    job.cancel()
    with pytest.raises(CancelledError):
        job.wait(60)
    assert job.error == "cancelled by the user"


# -- the inputs table ----------------------------------------------------------------------------------------

class Volume:
    def __init__(self, name):
        self.name = name


class Parameters:
    def __init__(self, volumes, modalities, reference=None, reference_modality="t1"):
        self.movingVolumes, self.movingModalities = volumes, modalities
        self.referenceVolume, self.referenceModality = reference, reference_modality


def test_table_rows_follow_what_is_shown_after_a_volume_was_deleted():
    t2, flair, t1ce = Volume("t2"), Volume("flair"), Volume("t1ce")
    # The parameter node reads a deleted node back as None, at its index.
    parameters = Parameters([t2, None, flair, t1ce], ["t2", "pd", "flair", "t1ce"])
    edit_inputs(parameters, lambda table: table.remove([1]))  # the user removes the second row shown: flair
    assert parameters.movingVolumes == [t2, t1ce] and parameters.movingModalities == ["t2", "t1ce"]
    edit_inputs(parameters, lambda table: table.rename(1, " t1c "))
    assert parameters.movingModalities == ["t2", "t1c"]


def test_adding_volumes_refuses_repeats_and_keeps_modalities_unique():
    reference, t2, other = Volume("sub-01_T1w"), Volume("sub-01_T2w"), Volume("sub-01_T2w_run-2")
    table = InputsTable([t2], ["t2"])
    assert table.add(other, "sub-01_T2w_run-2", reference, "t1") == "t2_2"
    assert table.add(Volume("x"), "Segmentation", reference, "t1") == "channel3"
    with pytest.raises(InputError, match="already in the list"):
        table.add(t2, "sub-01_T2w", reference, "t1")
    with pytest.raises(InputError, match="is the reference volume"):
        table.add(reference, "sub-01_T1w", reference, "t1")
    parameters = Parameters([], [], reference, "t2")
    guess_reference_modality(parameters, "sub-01_T1w")
    assert parameters.referenceModality == "t1"
    guess_reference_modality(parameters, "Volume 3")  # says nothing: kept
    assert parameters.referenceModality == "t1"
    assert use_case(parameters, {"t1": reference, "flair": other}) == {"t1": reference, "flair": other}
    assert parameters.movingVolumes == [other] and parameters.movingModalities == ["flair"]


def test_case_channels_pair_each_volume_with_its_own_registration():
    reference, t2, flair, t1ce = Volume("t1"), Volume("t2"), Volume("flair"), Volume("t1ce")
    registered = {t2: Volume("t2_registered"), t1ce: Volume("t1ce_registered")}
    # flair was added after the last registration: it is left out, never sent under t1ce's name.
    table = InputsTable([t2, flair, t1ce], ["t2", "flair", "t1ce"])
    volumes, names, missing = case_channels(reference, "t1", table, registered.get)
    assert names == ["t1", "t2", "t1ce"] and volumes == [reference, registered[t2], registered[t1ce]]
    assert missing == ["flair"]
    with pytest.raises(InputError, match="select a reference volume"):
        case_channels(None, "t1", table, registered.get)


# -- jobs as the widget runs them ----------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_job_board_runs_one_job_per_role_hands_over_events_and_results():
    board, done = JobBoard(), []
    board.start("registration", ThreadJob(lambda report, cancel: (report(0.5, "half"), report(None, "a line", "log"), 42)[2]),
                done.append)
    with pytest.raises(RuntimeError, match="registration is already running"):
        board.start("registration", ThreadJob(lambda report, cancel: 1), done.append)
    events, finished = [], []
    while not board.idle:
        new_events, new_finished = board.poll()
        events += new_events
        finished += new_finished
        time.sleep(0.01)
    assert [(role, e.kind, e.message) for role, e in events] == [("registration", "progress", "half"),
                                                               ("registration", "log", "a line")]
    assert events[0][1].fraction == 0.5 and events[1][1].fraction is None
    ((role, job, on_done),) = finished
    assert role == "registration" and job.result == 42 and on_done == done.append


def test_job_board_later_and_cancel_all():
    clock, made = Clock(), []
    board = JobBoard(clock)
    board.later("training", 3.0, lambda: made.append(1) or ThreadJob(lambda report, cancel: "status"), lambda job: None)
    assert board.running("training") and board.poll() == ([], []) and not made  # not yet: no thread sleeps meanwhile
    clock.now = 3.0
    board.poll()
    assert made == [1]
    started = ThreadJob(lambda report, cancel: cancel.raise_if_cancelled() or time.sleep(5))
    board.start("segmentation", started, lambda job: pytest.fail("a closed scene must not receive results"))
    board.cancel_all()
    assert board.idle and started.cancelled


def test_a_registration_dropped_by_cancel_all_leaves_no_work_folder(quick, tmp_path):
    """Closing the scene drops the registration job (cancel_all: its on_done never runs); its work folder must go
    with it, not wait for an on_done that will not come."""
    temporary = tmp_path / "slicer-temporary"
    board = JobBoard()
    job = ThreadJob(lambda report, cancel: registration_work(RegistrationRequest(
        quick.volumes["t1"], [quick.volumes["t2"]], ["t1", "t2"], temporary, preset="brain-deformable",
        engine="executable", elastix=ELASTIX, transformix=TRANSFORMIX), report, cancel))
    board.start("registration", job, lambda finished: pytest.fail("a closed scene must not receive results"))
    deadline = time.monotonic() + 60
    while not any(e.kind == "log" for _role, e in board.poll()[0]) and time.monotonic() < deadline:
        time.sleep(0.05)  # elastix has started (and written its files) once it logs
    assert any(temporary.rglob("elastix.log"))
    board.cancel_all()
    with pytest.raises(CancelledError):
        job.wait(60)
    assert board.idle and board.poll() == ([], [])
    assert not any(temporary.iterdir())


def test_case_fingerprint_knows_a_case_only_while_it_is_unchanged(quick):
    case = {"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]}
    fetched = case_fingerprint(case)
    # What the module copies back out of the nodes: float32 voxels, a matrix rounded by VTK's decomposition.
    from_nodes = {"T1w": VoxelVolume(quick.volumes["t1"].array.astype(np.float32), quick.volumes["t1"].ijk_to_ras + 1e-9),
                  "t2": VoxelVolume(quick.volumes["t2"].array.astype(np.float64), quick.volumes["t2"].ijk_to_ras)}
    assert same_case(fetched, case_fingerprint(from_nodes))
    edited = quick.volumes["t2"].array.copy()
    edited[10, 10, 10] += 1.0
    moved = quick.volumes["t1"].ijk_to_ras.copy()
    moved[0, 3] += 2.0  # the reference put under a transform
    for changed in ({"t1": quick.volumes["t1"], "t2": VoxelVolume(edited, quick.volumes["t2"].ijk_to_ras)},
                    {"t1": VoxelVolume(quick.volumes["t1"].array, moved), "t2": quick.volumes["t2"]},
                    {"t1": quick.volumes["t1"], "flair": quick.volumes["t2"]},
                    {"t2": quick.volumes["t2"], "t1": quick.volumes["t1"]},
                    {"t1": quick.volumes["t1"]}):
        assert not same_case(fetched, case_fingerprint(changed)), list(changed)
    assert not same_case("", fetched) and not same_case(fetched, "") and not same_case("", "")


def test_submit_refuses_a_label_off_the_case_grid_before_sending(quick, tmp_path):
    """The reference volume moved (put under another transform) after segmenting: the label Slicer exports is on
    the reference's new world grid; it is refused here, saying why, instead of by the server ("grid differs")."""
    from ElastixMonaiLabelLib.client.rest import MonaiLabelClient
    from ElastixMonaiLabelLib.client.local_server import free_port

    fingerprint = case_fingerprint({"t1": quick.volumes["t1"], "t2": quick.volumes["t2"]})
    moved = quick.volumes["t1"].ijk_to_ras.copy()
    moved[1, 3] += 5.0
    label = VoxelVolume((quick.brain_mask.array > 0).astype(np.uint8), moved)
    unreachable = MonaiLabelClient(f"127.0.0.1:{free_port()}", timeout=5)  # the refusal comes before any request
    with pytest.raises(InputError, match="is not on the grid case-9 has on the server .*origin.*put it back or segment again"):
        submit_work(unreachable, "case-9", label, tmp_path, fingerprint)
    assert not any(tmp_path.iterdir())
def test_training_run_follows_the_server_until_it_ends():
    class Client:
        answers = [{"status": "SUBMITTED"}, {"status": "RUNNING", "details": ["Epoch: 1/2"]}, {"status": "DONE"}]

        def train_start(self, model, params):
            assert (model, params) == ("segmentation", {"max_epochs": 2})
            return self.answers[0]

        def train_status(self):
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

        def train_stop(self):
            return {"status": "STOPPED"}

    clock, heard = Clock(), []
    board, run = JobBoard(clock), TrainingRun(Client(), "segmentation", 2)
    run.start(board, lambda fraction, message: heard.append((fraction, message)))
    while not board.idle and clock.now < 60:
        for _role, job, on_done in board.poll()[1]:
            on_done(job)
        clock.now += 1.0
        time.sleep(0.01)
    assert not run.running and heard[-1] == (1.0, "training finished")
    assert (0.5, "training: epoch 1 of 2") in heard


def test_server_answers_the_module_reads():
    info = {"models": {"atlas_registration": {"type": "segmentation", "channels": {"any_of": ["t1", "t2"]},
                                              "description": "Atlases"},
                       "segmentation": {"type": "segmentation", "channels": {"all_of": ["t1", "flair"]}, "trained": False},
                       "scoring": {"type": "scoring"}},
            "trainers": {"segmentation": {}}}
    assert segmentation_models(info) == ["atlas_registration", "segmentation"]
    assert describe_model(info["models"]["atlas_registration"]) == "Atlases - reads one of t1, t2"
    assert describe_model(info["models"]["segmentation"]).endswith("needs channels t1, flair (not trained yet)")
    assert trainer_for(info, "atlas_registration") == "segmentation"


# -- what Slicer 5.10 needs the module to check itself ---------------------------------------------------------

def test_missing_requirements_are_found_without_pip():
    installed = {"itk-elastix": "0.25.4", "nibabel": "5.1.0"}.get

    def version(name):
        from importlib.metadata import PackageNotFoundError

        if installed(name) is None:
            raise PackageNotFoundError(name)
        return installed(name)

    requirements = read_requirements(resource_path("requirements.txt"))
    assert requirements == ["itk-elastix>=0.25.4", "nibabel>=5.2"]
    assert missing_requirements(requirements, version) == ["nibabel>=5.2"]
    assert missing_requirements(["scipy", "itk-elastix==0.25.4"], version) == ["scipy"]
    with pytest.raises(ValueError, match="unsupported requirement"):
        missing_requirements(["itk-elastix[extra]>=1"], version)


def test_registration_under_an_existing_parent_keeps_it_and_aligns():
    registration = rigid_matrix(np.radians([10.0, 5.0, -8.0]), np.array([3.0, 1.0, -6.0]), np.array([10.0, 0.0, 20.0]))
    parent = np.eye(4)
    parent[:3, 3] = [4.0, -3.0, 2.0]
    from_parent = from_parent_under(registration, parent)
    # The volume's world placement is parent . to_parent; it must equal M^-1 applied after the parent's effect.
    world = parent @ np.linalg.inv(from_parent)
    np.testing.assert_allclose(world, np.linalg.inv(registration) @ parent, atol=1e-9)
    np.testing.assert_allclose(from_parent_under(registration), registration)
