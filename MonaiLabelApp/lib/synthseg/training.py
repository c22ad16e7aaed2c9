"""Contrast-agnostic training from label maps alone (SynthSeg's principle), on CPU or GPU.

Every training sample is a fresh image synthesised from one of the label maps by the batched
generator in :mod:`lib.synthseg.synthesis`, on the training device: the label maps are loaded once
(RAS, training spacing, head box) and kept there, so a GPU never waits for CPU workers. The
network never sees a real image and learns no particular contrast; the same weights then
segment T1, T2 or FLAIR. Optionally a share of the iterations (``real_fraction``) uses real
labelled images instead, one channel at a time (loaded on the CPU).

On CUDA: mixed precision (bfloat16 autocast by default; float16 with a GradScaler on request),
cuDNN autotuning, TF32, channels-last memory; on the CPU plain float32. :func:`run_training`
can checkpoint every few minutes (model, optimizer, scaler, iteration, random states; written
to a temporary name, then renamed), resume, and log loss and validation Dice to a CSV.

Imports torch, numpy, nibabel and MONAI only (not monailabel, not ITK): it runs on a bare GPU
machine with those two wheels added. Used by the server's ``synthseg`` train task,
lib/synthseg/train.py (the unattended command) and benchmarks/synthseg.py.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.losses import DiceCELoss
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    Lambdad,
    LoadImaged,
    Orientationd,
    RandSpatialCropd,
    ResizeWithPadOrCropd,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)

from ElastixMonaiLabelLib.runtime.files import atomic_path, write_text

from ..models.networks import NUM_CLASSES, init_filters_of, segresnet, synthseg_network_for
from .synthesis import SynthSegGenerator, load_random_state, random_state_dict

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass
class SynthSegTrainingConfig:
    """What a training run does; saved beside the weights so that a model says how it was made."""

    spacing_mm: float = 2.0
    roi: tuple[int, int, int] | None = None  # None: a 160 x 192 x 160 mm head box at spacing_mm (see head_roi)
    crop: tuple[int, int, int] | None = None  # random crops of the roi (small for tests, or 1 mm); None: whole roi
    batch_size: int = 1
    learning_rate: float = 2e-3
    # Linear decay to 5 % of learning_rate over the training minutes of the run that started the schedule
    # (its max_minutes less loading); a resumed run continues it (the checkpoint keeps it).
    lr_decay: bool = False
    max_minutes: float = 30.0
    max_iterations: int = 100_000
    seed: int = 0
    workers: int = 0  # loader workers for real images (label maps are synthesised on the device)
    device: str = "cpu"
    amp: str = "auto"  # auto (bf16 on cuda, off on cpu), bf16, fp16 (with a GradScaler), off
    init_filters: int = 8  # SegResNet width: 8 -> 2.9 MB of weights, 16 -> 11.7 MB
    translation_mm: float = 0.0  # random shift of the head in its box
    strip_prob: float = 0.0  # share of skull-stripped synthetic images (only the 32 structures keep intensity)
    init_weights: str | None = None  # start from these weights (same init_filters) instead of random ones
    real_fraction: float = 0.0  # share of iterations on the datastore's labelled images (0: label maps alone)
    label_maps: list[str] = field(default_factory=list)
    real_images: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.roi is None:
            self.roi = head_roi(self.spacing_mm)
        self.roi = tuple(self.roi)
        self.crop = tuple(self.crop) if self.crop else None


def head_roi(spacing_mm: float) -> tuple[int, int, int]:
    """Voxels of a 160 x 192 x 160 mm box (an adult brain with margin) at ``spacing_mm``, each
    a multiple of 8 (the network halves the size three times)."""
    return tuple(max(8, int(8 * round(extent / spacing_mm / 8))) for extent in (160, 192, 160))


def amp_dtype(config: SynthSegTrainingConfig) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32."""
    kind = config.amp
    if kind == "auto":
        kind = "bf16" if torch.device(config.device).type == "cuda" else "off"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[kind]


def label_map_loader(config: SynthSegTrainingConfig) -> Compose:
    """A label map file -> (1, *roi) FreeSurfer ids in RAS at the training spacing around the head."""
    return Compose([
        LoadImaged(keys="label", image_only=True),
        EnsureChannelFirstd(keys="label"),
        Orientationd(keys="label", axcodes="RAS"),
        Spacingd(keys="label", pixdim=[config.spacing_mm] * 3, mode="nearest"),
        CropForegroundd(keys="label", source_key="label", margin=2),
        ResizeWithPadOrCropd(keys="label", spatial_size=config.roi),
        EnsureTyped(keys="label", data_type="tensor", track_meta=False, dtype=torch.float32),
    ])


def load_label_maps(paths: Sequence[str | Path], config: SynthSegTrainingConfig, device: torch.device | str) -> torch.Tensor:
    """All label maps as one (N, 1, *roi) float tensor on ``device`` (loaded in parallel threads, once)."""
    if not paths:
        raise ValueError("no label maps to train from")
    loader = label_map_loader(config)
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
        maps = list(pool.map(lambda p: loader({"label": str(p)})["label"], paths))
    return torch.stack(maps).to(device)


def real_image_transforms(config: SynthSegTrainingConfig) -> Compose:
    """One channel of a datastore case and its label (values 0..32), as the network sees a
    synthetic sample: RAS at the training spacing, the head box, intensities 0..1 (as
    segment_volume scales them)."""
    from ..transforms import SelectChannelsd

    keys = ["image", "label"]
    steps = [
        LoadImaged(keys=keys, reader="NibabelReader", image_only=True),
        SelectChannelsd(keys="image", channel_key="channel"),
        EnsureChannelFirstd(keys="label", channel_dim="no_channel"),
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=[config.spacing_mm] * 3, mode=("bilinear", "nearest")),
        CropForegroundd(keys=keys, source_key="label", margin=2),
        ResizeWithPadOrCropd(keys=keys, spatial_size=config.roi),
        ScaleIntensityRangePercentilesd(keys="image", lower=0, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys=keys, data_type="tensor", track_meta=False),
        Lambdad(keys="label", func=lambda label: label.long()),
    ]
    if config.crop:
        steps.append(RandSpatialCropd(keys=keys, roi_size=config.crop, random_size=False))
    return Compose(steps).set_random_state(config.seed)


def _endless(loader: DataLoader) -> Iterator[dict]:
    while True:
        yield from loader


def make_generator(config: SynthSegTrainingConfig, priors_dir, device, seed: int) -> SynthSegGenerator:
    return SynthSegGenerator(priors_dir, config.spacing_mm, device, out_shape=config.crop, seed=seed,
                             translation_mm=config.translation_mm, strip_prob=config.strip_prob)


def confusion_dice(predicted: torch.Tensor, truth: torch.Tensor, classes: int = NUM_CLASSES) -> torch.Tensor:
    """Dice per class (NaN where a class is in neither), from one bincount of (truth, predicted) pairs."""
    pairs = truth.flatten().long() * classes + predicted.flatten().long()
    confusion = torch.bincount(pairs, minlength=classes * classes).view(classes, classes).double()
    overlap = confusion.diagonal()
    total = confusion.sum(0) + confusion.sum(1)
    return torch.where(total > 0, 2 * overlap / total.clamp_min(1), torch.full_like(total, float("nan")))


class SynthSegTraining:
    """Model, optimizer, scaler, generator and random states of one training run: :meth:`step`
    trains one batch; :meth:`state_dict` / :meth:`load_state_dict` checkpoint and resume it."""

    def __init__(self, config: SynthSegTrainingConfig, label_maps: Sequence[str | Path], priors_dir,
                 real_images: Sequence[Mapping[str, str]] = (), validation_maps: Sequence[str | Path] = (),
                 validation_samples: int = 4) -> None:
        self.config = config
        config.label_maps = [_describe(p) for p in label_maps]
        self.validation_maps = [_describe(p) for p in validation_maps]
        config.real_images = [f"{item['image']}:{item['channel']}" for item in real_images]
        self.device = torch.device(config.device)
        cuda = self.device.type == "cuda"
        if cuda and self.device.index is None:  # one explicit index: generators and tensors must agree on it
            self.device = torch.device("cuda", torch.cuda.current_device())
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest convolutions
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(config.seed)
        self.maps = load_label_maps(label_maps, config, self.device)
        self.generator = make_generator(config, priors_dir, self.device, config.seed)
        self.draw = np.random.RandomState(config.seed + 1)  # which map, real or synthetic
        self.real = None
        if real_images and config.real_fraction > 0:
            real_set = CacheDataset([dict(item) for item in real_images], transform=real_image_transforms(config),
                                    cache_rate=1.0, num_workers=None, progress=False, copy_cache=True)
            self.real = _endless(DataLoader(real_set, batch_size=config.batch_size, shuffle=True,
                                            num_workers=config.workers, pin_memory=cuda,
                                            generator=torch.Generator().manual_seed(config.seed + 1)))
        self.memory_format = torch.channels_last_3d if cuda else torch.contiguous_format
        self.model = segresnet(1, config.init_filters)
        if config.init_weights:
            state = torch.load(config.init_weights, map_location="cpu", weights_only=True)
            if init_filters_of(state) != config.init_filters:
                raise ValueError(f"{config.init_weights} has init_filters {init_filters_of(state)}, not "
                                 f"{config.init_filters}: start from weights of the same width (--filters)")
            self.model.load_state_dict(state, strict=True)
        self.model = self.model.to(self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate, weight_decay=1e-5)
        self.amp = amp_dtype(config)
        # bfloat16 has float32's range: only float16 needs its loss scaled.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.loss_function = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
        self.iteration = self.real_iterations = self.samples = 0
        self.train_seconds = 0.0
        # (training seconds at its start, its length in seconds): set by the first run with lr_decay, then
        # kept in the checkpoint so that a resumed run goes on from where the rate was.
        self.lr_schedule: tuple[float, float] | None = None
        self.validation = self._validation_set(validation_maps, priors_dir, validation_samples)

    def _validation_set(self, paths, priors_dir, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed synthetic samples from held-out label maps (same ranges, own seed): the same every checkpoint."""
        if not paths or count <= 0:
            return []
        maps = load_label_maps(paths, self.config, self.device)
        generator = make_generator(self.config, priors_dir, self.device, seed=10_000 + self.config.seed)
        return [generator(maps[index % len(maps)][None]) for index in range(count)]

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        use_real = self.real is not None and self.draw.random_sample() < self.config.real_fraction
        if use_real:
            batch = next(self.real)
            image = batch["image"].to(self.device, non_blocking=True)
            label = batch["label"].to(self.device, non_blocking=True)
        else:
            picks = self.draw.randint(0, len(self.maps), self.config.batch_size)
            image, label = self.generator(torch.stack([self.maps[i] for i in picks]))
        return image.contiguous(memory_format=self.memory_format), label, use_real

    def set_learning_rate(self, rate: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def decayed_learning_rate(self, train_seconds: float) -> float:
        """The rate ``train_seconds`` into the run (counted over resumes): linear from learning_rate to 5 %."""
        start, length = self.lr_schedule
        return self.config.learning_rate * max(0.05, 1 - (train_seconds - start) / max(length, 1e-9))

    def step(self) -> torch.Tensor:
        """One optimizer step; returns the loss as a device tensor (reading it would make the host wait)."""
        image, label, use_real = self.batch()
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            logits = self.model(image)
        loss = self.loss_function(logits.float(), label)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        self.real_iterations += int(use_real)
        self.samples += image.shape[0]
        return loss.detach()

    @torch.no_grad()
    def validation_dice(self) -> float:
        """Mean Dice over the 32 structures on the fixed validation samples (NaN without any)."""
        if not self.validation:
            return float("nan")
        self.model.eval()
        scores = []
        for image, label in self.validation:
            with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                logits = self.model(image.contiguous(memory_format=self.memory_format))
            scores.append(confusion_dice(logits.argmax(dim=1), label[:, 0])[1:])
        self.model.train()
        return float(torch.nanmean(torch.stack(scores), dim=1).mean())

    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "iteration": self.iteration, "real_iterations": self.real_iterations, "samples": self.samples,
            "train_seconds": self.train_seconds, "lr_schedule": self.lr_schedule,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "generator": self.generator.state_dict(), "draw": random_state_dict(self.draw),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a synthseg training checkpoint of format {CHECKPOINT_FORMAT}")
        saved = state["config"]
        differing = [key for key in ("spacing_mm", "roi", "crop", "init_filters", "batch_size")
                     if _plain(saved.get(key)) != _plain(getattr(self.config, key))]
        if differing:
            raise ValueError("the checkpoint was made with other settings: " + ", ".join(
                f"{key} {_plain(saved.get(key))} (now {_plain(getattr(self.config, key))})" for key in differing))
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.generator.load_state_dict(state["generator"])
        load_random_state(self.draw, state["draw"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.iteration, self.real_iterations = state["iteration"], state["real_iterations"]
        self.samples, self.train_seconds = state["samples"], state["train_seconds"]
        schedule = state.get("lr_schedule")  # absent from checkpoints of before the schedule was kept
        self.lr_schedule = (float(schedule[0]), float(schedule[1])) if schedule is not None else None


def _describe(path: str | Path) -> str:
    """A label map's path for the JSON: relative to the repository when inside it (no machine's folders)."""
    path = Path(path).resolve()
    root = Path(__file__).resolve().parents[3]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(training: SynthSegTraining, path: str | Path) -> None:
    """Everything to continue the run, written to a temporary name, then renamed."""
    _atomic_torch_save(training.state_dict(), Path(path))


def load_checkpoint(training: SynthSegTraining, path: str | Path) -> None:
    training.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


CSV_FIELDS = ("iteration", "samples", "train_minutes", "loss", "val_dice", "samples_per_s", "learning_rate",
              "real_iterations", "device", "amp")


def _trim_csv(path: Path, iteration: int) -> None:
    """Drop rows written after the checkpoint a run resumes from (they will be written again)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["iteration"]) <= iteration]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass
class RunOutputs:
    """Where :func:`run_training` writes: weights (+ JSON) always; checkpoint and CSV when given."""

    weights: Path
    checkpoint: Path | None = None
    csv: Path | None = None
    checkpoint_minutes: float = 2.0
    checkpoint_iterations: int = 0  # also every N iterations (0: by time only)
    summary: dict = field(default_factory=dict)  # extra entries for the weights' JSON (e.g. the command)
    publish: Path | None = None  # also copy weights, JSON and CSV here at every checkpoint (e.g. a GPU machine's $OUT)


def _publish(outputs: RunOutputs, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for source in (outputs.weights, outputs.weights.with_suffix(".json"), outputs.csv):
        if source and source.exists():
            with atomic_path(folder / source.name) as tmp:
                shutil.copyfile(source, tmp)


class _RunRecorder:
    """What :func:`run_training` writes at each checkpoint (a CSV row, the checkpoint, the weights and
    their JSON, the published copies) and what it keeps between checkpoints."""

    def __init__(self, training: SynthSegTraining, outputs: RunOutputs, log: Callable[[str], None]) -> None:
        self.training, self.outputs, self.log = training, outputs, log
        self.loop_start = self.last_record = time.monotonic()
        self.seconds_at_start = training.train_seconds
        self.samples_at_record = training.samples
        self.pending: list[torch.Tensor] = []  # losses since the last row, still on the device
        self.losses: list[float] = []
        self.val_dice = float("nan")

    def train_seconds(self) -> float:
        """Training seconds counted over resumes, now."""
        return self.seconds_at_start + time.monotonic() - self.loop_start

    def due(self) -> bool:
        outputs, iteration = self.outputs, self.training.iteration
        return bool((outputs.checkpoint_iterations and iteration % outputs.checkpoint_iterations == 0) or
                    (outputs.checkpoint and time.monotonic() - self.last_record >= outputs.checkpoint_minutes * 60))

    def _row(self, now: float, values: list[float]) -> dict:
        training = self.training
        return {"iteration": training.iteration, "samples": training.samples,
                "train_minutes": round(training.train_seconds / 60, 3),
                "loss": round(float(np.mean(values)), 5) if values else "",
                "val_dice": "" if math.isnan(self.val_dice) else round(self.val_dice, 4),
                "samples_per_s": round((training.samples - self.samples_at_record) / max(now - self.last_record, 1e-9), 2),
                "learning_rate": f"{training.optimizer.param_groups[0]['lr']:.3g}",
                "real_iterations": training.real_iterations, "device": str(training.device),
                "amp": str(training.amp).replace("torch.", "") if training.amp else "off"}

    def _write(self, row: dict) -> None:
        training, outputs = self.training, self.outputs
        # Row first, then the checkpoint: a run stopped in between resumes from the previous
        # checkpoint and trims the row away (see _trim_csv), so the CSV never runs ahead.
        if outputs.csv:
            _append_csv(outputs.csv, row)
        if outputs.checkpoint:
            save_checkpoint(training, outputs.checkpoint)
        save_model(training.model, training.config, outputs.weights, {
            "iterations": training.iteration, "real_image_iterations": training.real_iterations,
            "samples": training.samples, "minutes": round(training.train_seconds / 60, 2),
            "final_loss": row["loss"] or None, "val_dice": row["val_dice"] or None,
            "validation_maps": training.validation_maps, **outputs.summary})
        if outputs.publish:
            _publish(outputs, Path(outputs.publish))

    def record(self) -> None:
        now = time.monotonic()
        self.training.train_seconds = self.seconds_at_start + (now - self.loop_start)
        values = torch.stack(self.pending).float().cpu().tolist() if self.pending else []
        self.losses.extend(values)
        self.pending.clear()
        self.val_dice = self.training.validation_dice()
        row = self._row(now, values)
        self._write(row)
        self.log(f"checkpoint at iteration {self.training.iteration}: loss {row['loss']}, validation Dice "
                 f"{row['val_dice']}, {row['samples_per_s']} samples/s")
        self.last_record, self.samples_at_record = now, self.training.samples


def run_training(training: SynthSegTraining, outputs: RunOutputs, log: Callable[[str], None] = logger.info,
                 stop: Callable[[], bool] | None = None, started: float | None = None, log_every: int = 50) -> dict:
    """Train until ``max_iterations`` (counted over resumes), ``max_minutes`` after ``started``
    (time.monotonic(); default now), or ``stop()``. At every checkpoint (every
    ``checkpoint_minutes``, every ``checkpoint_iterations``, and at the end): a CSV row (loss
    since the last row, validation Dice), the checkpoint, and the weights with their JSON.
    Returns the history: loss per iteration (this run), iterations, minutes, validation Dice.
    """
    config = training.config
    started = time.monotonic() if started is None else started
    budget = config.max_minutes * 60
    recorder = _RunRecorder(training, outputs, log)
    if outputs.csv and outputs.checkpoint:
        _trim_csv(outputs.csv, training.iteration)
    if config.lr_decay and training.lr_schedule is None:
        # The schedule spans the training time this run has left (its budget less loading), counted over resumes.
        training.lr_schedule = (recorder.seconds_at_start, budget - (recorder.loop_start - started))
    start_iteration = recorded_at = training.iteration
    while training.iteration < config.max_iterations:
        if time.monotonic() - started >= budget or (stop and stop()):
            break
        if config.lr_decay:
            training.set_learning_rate(training.decayed_learning_rate(recorder.train_seconds()))
        recorder.pending.append(training.step())
        if training.iteration % log_every == 0:
            recent = torch.stack(recorder.pending[-log_every:]).float().mean().item()
            log(f"iteration {training.iteration}: loss {recent:.4f} ({(time.monotonic() - started) / 60:.1f} min)")
        if recorder.due():
            recorder.record()
            recorded_at = training.iteration
    if training.iteration != recorded_at:  # nothing trained in this run: nothing new to write
        recorder.record()
    return {"losses": recorder.losses, "iterations": training.iteration,
            "real_image_iterations": training.real_iterations, "minutes": training.train_seconds / 60,
            "val_dice": recorder.val_dice, "samples": training.samples, "start_iteration": start_iteration}


def train_from_label_maps(
    label_maps: Sequence[str | Path], out_path: str | Path, priors_dir, config: SynthSegTrainingConfig | None = None,
    log: Callable[[str], None] = logger.info, stop: Callable[[], bool] | None = None,
    real_images: Sequence[Mapping[str, str]] = (),
) -> dict:
    """Train the network on images synthesised from ``label_maps``; save weights + config to ``out_path``.

    ``real_images`` ({"image": case file, "channel": name, "label": label file}) join in for
    ``config.real_fraction`` of the iterations, drawn at random (seeded). Stops after
    ``max_minutes`` or ``max_iterations`` (or when ``stop()`` says so). Returns the history:
    loss per iteration, iterations (of which on real images), minutes.
    """
    config = config or SynthSegTrainingConfig()
    training = SynthSegTraining(config, label_maps, priors_dir, real_images=real_images)
    return run_training(training, RunOutputs(weights=Path(out_path)), log=log, stop=stop, log_every=10)


def save_model(model: torch.nn.Module, config: SynthSegTrainingConfig, out_path: str | Path, summary: dict) -> None:
    """Weights as a plain float32 state dict (written to a temporary name, then renamed) and a JSON of how they were made."""
    out_path = Path(out_path)
    _atomic_torch_save({k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu()
                        for k, v in model.state_dict().items()}, out_path)
    info = {**asdict(config), **summary,
            "network": f"SegResNet(init_filters={config.init_filters}), 1 channel in, {NUM_CLASSES} classes"}
    write_text(out_path.with_suffix(".json"), json.dumps(info, indent=2) + "\n")


def model_info(path: str | Path) -> dict:
    """The JSON beside a weights file (how the model was made; ``spacing_mm``, ``init_filters``)."""
    info = Path(path).with_suffix(".json")
    if not info.exists():
        raise FileNotFoundError(f"{info}: missing; a synthseg model's weights need their JSON (spacing, network)")
    return json.loads(info.read_text())


def load_model(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The network with these weights: tensors only (weights_only) and strictly (every key, every shape), at
    the width the weights have (lib.models.networks.synthseg_network_for, as the server loads them)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = synthseg_network_for(state)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def inference_roi(shape: Sequence[int], max_voxels: int = 160 * 192 * 160) -> tuple[int, ...]:
    """One window over the whole volume (rounded up to multiples of 8) when it fits ``max_voxels``,
    else sliding windows of the head box at 1 mm's voxel count."""
    whole = tuple(int(8 * math.ceil(n / 8)) for n in shape)
    return whole if np.prod(whole) <= max_voxels else (96, 112, 96)


@torch.no_grad()
def segment_volume(model: torch.nn.Module, image: np.ndarray, device: str = "cpu", roi=None) -> np.ndarray:
    """Labels 0..32 for one volume already at the model's spacing (any contrast), by sliding windows."""
    from monai.inferers import sliding_window_inference

    data = torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None].to(device)
    low, high = torch.quantile(data.flatten()[:: max(1, data.numel() // 200_000)], torch.tensor([0.0, 0.995], device=device))
    data = ((data - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)
    roi = roi or inference_roi(data.shape[2:])
    logits = sliding_window_inference(data, roi_size=roi, sw_batch_size=1, predictor=model, overlap=0.25)
    return logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)


def resample_labels_nearest(labels: np.ndarray, labels_affine: np.ndarray, shape: Sequence[int],
                            affine: np.ndarray) -> np.ndarray:
    """Labels (voxel-to-world ``labels_affine``) onto another grid (``shape``, ``affine``), nearest
    neighbour, 0 outside; one slice of the target at a time (small memory at 1 mm)."""
    to_source = np.linalg.inv(labels_affine) @ affine
    out = np.zeros(tuple(shape), dtype=labels.dtype)
    j, k = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
    for i in range(shape[0]):
        points = np.stack([np.full(j.shape, i), j, k, np.ones(j.shape)], axis=-1).reshape(-1, 4) @ to_source.T
        index = np.rint(points[:, :3]).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.array(labels.shape)), axis=1)
        values = np.zeros(len(index), dtype=labels.dtype)
        values[inside] = labels[tuple(index[inside].T)]
        out[i] = values.reshape(j.shape)
    return out


def to_model_grid(path: str | Path, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """A volume file in RAS at ``spacing`` (as the training loader sees label maps) and its voxel-to-RAS matrix."""
    load = Compose([LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"),
                    Orientationd(keys="image", axcodes="RAS"), Spacingd(keys="image", pixdim=[spacing] * 3)])
    data = load({"image": str(path)})
    return np.asarray(data["image"][0]), np.asarray(data["image"].affine, dtype=np.float64)


def segment_file(model: torch.nn.Module, path: str | Path, spacing: float, device: str = "cpu",
                 onto: str | Path | None = None) -> np.ndarray:
    """Labels 0..32 for a volume file, as a user gets them: the volume at the model's spacing (RAS),
    the network, then labels back onto the grid of ``onto`` (default: the file's own), nearest neighbour."""
    import nibabel

    array, model_affine = to_model_grid(path, spacing)
    predicted = segment_volume(model, array, device)
    target = nibabel.load(str(onto or path))
    return resample_labels_nearest(predicted, model_affine, target.shape[:3], target.affine)
