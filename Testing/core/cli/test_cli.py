"""The command line, run as a user would: the installed console script, real files."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ElastixMonaiLabelLib.cli import build_parser

SCRIPT = shutil.which("elastix-monailabel", path=str(Path(sys.executable).parent))


def run(*args, check=True):
    completed = subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True)
    if check:
        assert completed.returncode == 0, completed.stderr
    return completed


def test_console_script_is_installed():
    assert SCRIPT, "scripts/setup-env.sh installs the console script into the venv"


@pytest.mark.parametrize("command", ["sample-data", "register", "presets", "demo"])
def test_help_explains_every_option(command):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    text = run(command, "--help").stdout
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.option_strings[-1] in text
            assert action.help, f"{command} {action.option_strings} has no help text"


def test_sample_data_then_register_writes_documented_files(tmp_path):
    run("sample-data", "--out", tmp_path / "subject", "--seed", "2", "--spacing", "3")
    subject = json.loads((tmp_path / "subject" / "subject.json").read_text())
    assert subject["spacing_mm"] == 3.0
    completed = run(
        "register", "--fixed", tmp_path / "subject" / "t1.nii.gz",
        "--moving", tmp_path / "subject" / "t2.nii.gz", tmp_path / "subject" / "flair.nii.gz",
        "--out", tmp_path / "reg", "--engine", "executable", "--threads", "2",
    )
    names = sorted(p.name for p in (tmp_path / "reg").iterdir())
    assert names == sorted([
        "t2_registered.nii.gz", "t2_to_t1.tfm", "t2_registration.json",
        "flair_registered.nii.gz", "flair_to_t1.tfm", "flair_registration.json",
    ])
    report = json.loads((tmp_path / "reg" / "flair_registration.json").read_text())
    assert report["engine"] == "executable" and report["preset"] == "brain-rigid"
    assert report["metric_after"] > report["metric_before"]
    assert "NMI" in completed.stdout and "registering" in completed.stderr  # progress bar on stderr


def test_several_subjects_get_their_own_folders(tmp_path):
    run("sample-data", "--out", tmp_path, "--seed", "10", "--subjects", "2", "--spacing", "3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub-010", "sub-011"]
