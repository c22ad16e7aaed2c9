"""The unattended training command on tiny volumes (3 mm, 32^3 crops, CPU): it checkpoints, stops on
SIGTERM with a checkpoint, resumes where it stopped (same iterations as an uninterrupted run, the
learning-rate decay where it was), and logs rows to its CSV."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ElastixMonaiLabelLib.runtime.resources import resource_path
from lib.synthseg.train import main

MAPS = resource_path("SynthSeg", "label_maps")
ROOT = Path(__file__).resolve().parents[3]
TINY = ["--device", "cpu", "--spacing", "3", "--roi", "56", "64", "56", "--crop", "32", "32", "32", "--batch-size", "2",
        "--label-maps", str(MAPS / "training_seg_01.nii.gz"), str(MAPS / "training_seg_02.nii.gz"),
        "--validation-maps", str(MAPS / "training_seg_13.nii.gz"), "--validation-samples", "1", "--threads", "1"]


def rows(folder: Path) -> list[dict]:
    with (folder / "training.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_resumed_run_continues_exactly_where_it_stopped(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    main(["--out", str(straight), "--minutes", "5", "--max-iterations", "6", "--checkpoint-iterations", "3", *TINY])
    first = main(["--out", str(split), "--minutes", "5", "--max-iterations", "4", "--checkpoint-iterations", "3", *TINY])
    assert first["iterations"] == 4
    assert torch.load(split / "checkpoint.pt", weights_only=True)["iteration"] == 4
    second = main(["--out", str(split), "--minutes", "5", "--max-iterations", "6", "--checkpoint-iterations", "3",
                   "--publish", str(tmp_path / "published"), *TINY])
    assert (second["start_iteration"], second["iterations"]) == (4, 6)
    # Same model, optimizer and random states restored: the split run ends with the same weights.
    a = torch.load(straight / "synthseg.pt", weights_only=True)
    b = torch.load(split / "synthseg.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert max(float((a[k].float() - b[k].float()).abs().max()) for k in a) < 1e-4
    assert [r["iteration"] for r in rows(straight)] == ["3", "6"]
    assert [r["iteration"] for r in rows(split)] == ["3", "4", "6"]
    for row in rows(split):
        assert float(row["loss"]) > 0 and 0 <= float(row["val_dice"]) <= 1 and row["device"] == "cpu"
    for name in ("synthseg.pt", "synthseg.json", "training.csv"):  # --publish copies what a checkpoint wrote
        assert (tmp_path / "published" / name).read_bytes() == (split / name).read_bytes()
    info = json.loads((split / "synthseg.json").read_text())
    assert info["iterations"] == 6 and info["init_filters"] == 8 and info["command"].startswith("python -m lib.synthseg.train")
    assert info["validation_maps"] == ["ElastixMonaiLabel/Resources/SynthSeg/label_maps/training_seg_13.nii.gz"]


def test_sigterm_writes_a_checkpoint_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "ElastixMonaiLabel"), str(ROOT / "MonaiLabelApp")])}
    process = subprocess.Popen([sys.executable, "-m", "lib.synthseg.train", "--out", str(out), "--minutes", "10",
                                "--checkpoint-iterations", "2", *TINY], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "training.csv").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.5)
        assert (out / "training.csv").exists(), process.communicate(timeout=60)[0][-3000:]
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-3000:]
    assert "signal SIGTERM: checkpoint, then stop" in output
    stopped_at = torch.load(out / "checkpoint.pt", weights_only=True)["iteration"]
    assert stopped_at >= 2 and int(rows(out)[-1]["iteration"]) == stopped_at
    # The same command again (here with an iteration limit) picks the run up at that iteration.
    history = main(["--out", str(out), "--minutes", "10", "--max-iterations", str(stopped_at + 2),
                    "--checkpoint-iterations", "2", *TINY])
    assert (history["start_iteration"], history["iterations"]) == (stopped_at, stopped_at + 2)
    assert int(rows(out)[-1]["iteration"]) == stopped_at + 2


def test_a_resumed_run_continues_the_learning_rate_decay(tmp_path):
    """--lr-decay spans the first run's training time; the same command again goes on from the rate reached
    (the schedule is in the checkpoint), not from the full rate."""
    out, rate = tmp_path / "decay", 2e-3
    decay = ["--lr", str(rate), "--lr-decay", "--checkpoint-iterations", "1", *TINY]
    main(["--out", str(out), "--minutes", "0.5", *decay])  # until its time is up
    first = [float(r["learning_rate"]) for r in rows(out)]
    assert len(first) >= 2 and first == sorted(first, reverse=True) and first[-1] < 0.5 * rate, first
    stopped_at = int(rows(out)[-1]["iteration"])
    history = main(["--out", str(out), "--minutes", "5", "--max-iterations", str(stopped_at + 2), *decay])
    assert (history["start_iteration"], history["iterations"]) == (stopped_at, stopped_at + 2)
    resumed = [float(r["learning_rate"]) for r in rows(out)][len(first):]
    assert len(resumed) == 2 and max(resumed) <= first[-1], (first, resumed)
