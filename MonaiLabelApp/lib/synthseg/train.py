"""Unattended training of the contrast-agnostic ``synthseg`` model for a given number of minutes.

    python -m lib.synthseg.train --out DIR --minutes 8 --device cuda [options]
    (scripts/train-synthseg.sh sets PYTHONPATH; docs/synthseg-gpu-training.md has the GPU recipe)

Writes into DIR: ``synthseg.pt`` + ``synthseg.json`` (the weights the server loads, with how
they were made and this command), ``checkpoint.pt`` (model, optimizer, scaler, iteration,
random states) and ``training.csv`` (one row per checkpoint: loss, validation Dice on
synthetic images from held-out label maps, samples/s). Run the same command again and it
resumes from DIR/checkpoint.pt (``--restart`` ignores it). ``--publish DIR2`` copies the weights,
JSON and CSV there too at every checkpoint (a GPU machine's $OUT: the files come back even if
the call is cut short). SIGTERM or Ctrl-C: it writes a
checkpoint and stops. ``--minutes`` is this invocation's wall-clock budget, loading included;
``--max-iterations`` counts over resumes. ``--lr-decay`` spans the training time of the run that
started it; a resumed run continues it from the rate reached (the checkpoint keeps the schedule).

Needs torch, numpy, nibabel and MONAI only (no monailabel, no ITK).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ElastixMonaiLabelLib.runtime.resources import resource_path

from .training import (
    RunOutputs,
    SynthSegTraining,
    SynthSegTrainingConfig,
    load_checkpoint,
    run_training,
)

TRAINING_MAPS = [f"training_seg_{i:02d}.nii.gz" for i in range(1, 13)]  # 13..16 are held out for evaluation
VALIDATION_MAPS = [f"training_seg_{i:02d}.nii.gz" for i in range(13, 17)]


def _shipped(names: list[str]) -> list[str]:
    return [str(resource_path("SynthSeg", "label_maps", name)) for name in names]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.synthseg.train", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (weights, checkpoint, CSV)")
    p.add_argument("--minutes", type=float, required=True, help="wall-clock budget of this invocation, loading included")
    p.add_argument("--max-iterations", type=int, default=10**7, help="stop at this iteration (counted over resumes)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--spacing", type=float, default=2.0, help="model resolution in mm (default 2)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--filters", type=int, default=8, help="SegResNet init_filters (8: 2.9 MB, 16: 11.7 MB of weights)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    p.add_argument("--lr-decay", action="store_true", help="decay the learning rate linearly to 5%% over this run's --minutes (less loading); "
                        "a resumed run continues the decay where it was")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                   help="mixed precision: auto = bf16 on cuda, off (float32) on cpu")
    p.add_argument("--roi", type=int, nargs=3, default=None, help="head box in voxels (default 160x192x160 mm)")
    p.add_argument("--crop", type=int, nargs=3, default=None, help="train on random crops of the box (voxels)")
    p.add_argument("--translation-mm", type=float, default=10.0, help="random shift of the head in its box")
    p.add_argument("--strip-prob", type=float, default=0.25, help="share of skull-stripped synthetic images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label-maps", nargs="+", default=None, help="training label maps (default: shipped 01..12)")
    p.add_argument("--validation-maps", nargs="*", default=None, help="held-out label maps (default: shipped 13..16)")
    p.add_argument("--validation-samples", type=int, default=4)
    p.add_argument("--checkpoint-minutes", type=float, default=2.0)
    p.add_argument("--checkpoint-iterations", type=int, default=0, help="also checkpoint every N iterations")
    p.add_argument("--publish", type=Path, default=None,
                   help="also copy synthseg.pt/.json and training.csv here at every checkpoint")
    p.add_argument("--init-weights", type=Path, default=None, help="start from these weights (same --filters)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--sync-debug", action="store_true",
                   help="cuda: warn at every operation that makes the host wait for the GPU (diagnosis)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return p


def training_config(args: argparse.Namespace) -> SynthSegTrainingConfig:
    return SynthSegTrainingConfig(
        spacing_mm=args.spacing, roi=tuple(args.roi) if args.roi else None, crop=tuple(args.crop) if args.crop else None,
        batch_size=args.batch_size, learning_rate=args.lr, lr_decay=args.lr_decay, max_minutes=args.minutes,
        max_iterations=args.max_iterations, seed=args.seed, device=args.device, amp=args.amp, init_filters=args.filters,
        translation_mm=args.translation_mm, strip_prob=args.strip_prob,
        init_weights=str(args.init_weights) if args.init_weights else None)


def label_maps(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(training maps, held-out maps); each must exist."""
    maps = args.label_maps or _shipped(TRAINING_MAPS)
    held_out = _shipped(VALIDATION_MAPS) if args.validation_maps is None else args.validation_maps
    missing = [p for p in [*maps, *held_out] if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"error: label map not found: {missing[0]}")
    return maps, held_out


@contextlib.contextmanager
def stop_on_signals(log: Callable[[str], None]) -> Iterator[Callable[[], bool]]:
    """SIGTERM and Ctrl-C ask the run to stop (it writes a checkpoint first); the handlers are restored after."""
    stopping = []

    def on_signal(number, _frame) -> None:
        log(f"signal {signal.Signals(number).name}: checkpoint, then stop")
        stopping.append(number)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield lambda: bool(stopping)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv: list[str] | None = None) -> dict:
    started = time.monotonic()
    args = parser().parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device (torch "
                         f"{torch.__version__}); use --device cpu")
    config = training_config(args)
    maps, held_out = label_maps(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"

    def log(message: str) -> None:
        print(f"[{(time.monotonic() - started) / 60:5.1f} min] {message}", flush=True)

    training = SynthSegTraining(config, maps, resource_path("SynthSeg", "priors"), validation_maps=held_out,
                                validation_samples=args.validation_samples)
    if checkpoint.exists() and not args.restart:
        load_checkpoint(training, checkpoint)
        log(f"resumed from {checkpoint} at iteration {training.iteration} "
            f"({training.train_seconds / 60:.1f} training minutes so far)")
    device_name = torch.cuda.get_device_name(training.device) if training.device.type == "cuda" else platform.processor()
    log(f"training on {device_name or training.device} ({training.device}, autocast {str(training.amp).replace('torch.', '') if training.amp else 'off'}): "
        f"{len(maps)} label maps at {config.spacing_mm:g} mm, box {config.roi}, batch {config.batch_size}, "
        f"{sum(p.numel() for p in training.model.parameters()) / 1e6:.2f} M parameters; loading took "
        f"{time.monotonic() - started:.0f} s")
    if args.sync_debug and training.device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")  # expected: validation and the loss log every 50 iterations
    summary = {"command": "python -m lib.synthseg.train " + shlex.join(argv),
               "torch": torch.__version__, "device_name": device_name,
               "started": datetime.datetime.now().isoformat(timespec="seconds")}
    outputs = RunOutputs(weights=out / "synthseg.pt", checkpoint=checkpoint, csv=out / "training.csv",
                         checkpoint_minutes=args.checkpoint_minutes, checkpoint_iterations=args.checkpoint_iterations,
                         summary=summary, publish=args.publish)
    with stop_on_signals(log) as stop:
        history = run_training(training, outputs, log=log, stop=stop, started=started)
    log(f"done: iterations {history['start_iteration']} -> {history['iterations']}, {history['samples']} samples, "
        f"{history['minutes']:.1f} training minutes in all, validation Dice {history['val_dice']:.3f}; "
        f"weights {outputs.weights} ({datetime.datetime.now().isoformat(timespec='seconds')})")
    return history


if __name__ == "__main__":
    main()
