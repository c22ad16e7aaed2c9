"""Bad input: a clear error naming the file and the problem, and nothing written."""

import os
import subprocess
import sys

import itk
import numpy as np
import pytest

from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.workflows.register import register_files

CLI = [sys.executable, "-m", "ElastixMonaiLabelLib"]


def _write(array, path, like=None, spacing=None):
    image = itk.image_from_array(np.ascontiguousarray(array))
    if like is not None:
        image.CopyInformation(like)
    if spacing is not None:
        image.SetSpacing(spacing)
    itk.imwrite(image, str(path))
    return path


@pytest.fixture()
def bad_files(tmp_path, subject_3mm):
    t1 = itk.imread(str(subject_3mm.path("t1")), itk.F)
    shape = itk.array_view_from_image(t1).shape
    files = {"dir": tmp_path}
    files["text"] = tmp_path / "notes.nii.gz"
    files["text"].write_text("not an image")
    files["flat"] = _write(np.ones((30, 40), np.float32), tmp_path / "slice.nii.gz")
    series = itk.image_from_array(np.ones((3, 8, 9, 10), np.float32))
    files["4d"] = tmp_path / "series.nii.gz"
    itk.imwrite(series, str(files["4d"]))
    nan = itk.array_from_image(t1)
    nan[5, 5, 5] = np.nan
    files["nan"] = _write(nan, tmp_path / "nan.nii.gz", like=t1)
    files["empty_mask"] = _write(np.zeros(shape, np.uint8), tmp_path / "empty_mask.nii.gz", like=t1)
    files["other_grid_mask"] = _write(np.ones((10, 11, 12), np.uint8), tmp_path / "small_mask.nii.gz")
    return files


@pytest.mark.parametrize(
    "case,problem",
    [
        ("missing", "file not found"),
        ("text", "unreadable"),
        ("flat", "2D image"),
        ("4d", "4D image"),
        ("nan", "NaN or infinite"),
        ("empty_mask", "mask is empty"),
        ("other_grid_mask", "different grid"),
        ("preset", "unknown preset"),
        ("readonly_out", "not writable"),
    ],
)
def test_bad_input_is_named_and_writes_nothing(case, problem, bad_files, subject_3mm, tmp_path):
    out = tmp_path / "out"
    fixed, moving, mask, preset = subject_3mm.path("t1"), [subject_3mm.path("t2")], None, None
    named = None
    if case == "missing":
        moving = named = [tmp_path / "missing.nii.gz"]
    elif case in ("text", "flat", "4d", "nan"):
        moving = [bad_files[case]]
        named = moving
    elif case in ("empty_mask", "other_grid_mask"):
        mask = named = bad_files[case]
    elif case == "preset":
        preset, named = "nonsense", "preset"
    elif case == "readonly_out":
        if os.geteuid() == 0:
            # root writes anywhere: a regular file where the folder should be is unwritable for anyone.
            out = tmp_path / "file_not_folder"
            out.write_text("")
            out = out / "sub"
        else:
            out.mkdir()
            out.chmod(0o500)
        named = out
    with pytest.raises(InputError, match=problem) as error:
        register_files(fixed, moving, out, preset=preset, reference_mask_path=mask)
    expected = str(named[0] if isinstance(named, list) else named)
    assert expected in str(error.value)
    assert not out.exists() or not [p for p in out.iterdir()]

    # The command line says the same and exits with 2.
    command = [*CLI, "register", "--fixed", str(fixed), "--moving", *map(str, moving), "--out", str(out)]
    if mask:
        command += ["--fixed-mask", str(mask)]
    if preset:
        command += ["--preset", preset]
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 2, completed.stderr
    assert problem in completed.stderr and expected in completed.stderr


def test_existing_outputs_survive_a_failed_rerun(subject_3mm, tmp_path, bad_files):
    out = tmp_path / "out"
    first = register_files(subject_3mm.path("t1"), [subject_3mm.path("t2")], out)
    before = {path: path.read_bytes() for path in first[0].values()}
    with pytest.raises(InputError):
        register_files(subject_3mm.path("t1"), [subject_3mm.path("t2"), bad_files["nan"]], out)
    assert {path: path.read_bytes() for path in before} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_errors_survive_a_trip_between_processes():
    import pickle

    from ElastixMonaiLabelLib.client.rest import ServerError

    error = pickle.loads(pickle.dumps(InputError("/data/t1.nii.gz", "2D image")))
    assert isinstance(error, InputError) and error.source == "/data/t1.nii.gz" and str(error) == "/data/t1.nii.gz: 2D image"
    server = pickle.loads(pickle.dumps(ServerError("down", 503)))
    assert server.status == 503 and str(server) == "down"
