"""Which models take uploaded weights (PUT /model/{name}, lib.http.routes), where the weights go, what
network they must load into strictly, and the JSON some models need beside them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .networks import init_filters_of, segresnet, synthseg_network_for

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class UploadTarget:
    """Where a model's uploaded weights go and what they must fit.

    Args:
        path: the weights file the model loads.
        network_for: the fresh network a state dict must load into strictly (it may depend on the
            weights' own width, as synthseg's does).
        sidecar: the JSON written beside the weights, from the upload's ``spacing_mm`` and the state dict;
            None when the model needs none.
    """

    path: Path
    network_for: Callable[[StateDict], torch.nn.Module]
    sidecar: Callable[[float | None, StateDict], dict] | None = None


def segmentation_upload(path: Path, channels: Sequence[str]) -> UploadTarget:
    """The multimodal SegResNet: as many input channels as the model reads, 8 filters."""
    return UploadTarget(path, lambda state: segresnet(len(channels)))


def synthseg_upload(path: Path) -> UploadTarget:
    """The contrast-agnostic network, at the weights' own width (8 or 16 filters, as inference loads it),
    with the JSON inference reads: its resolution (the upload's, else the current model's, else 2 mm)."""

    def sidecar(spacing_mm: float | None, state: StateDict) -> dict:
        current = path.with_suffix(".json")
        previous = json.loads(current.read_text()) if current.exists() else {}
        return {"spacing_mm": float(spacing_mm or previous.get("spacing_mm", 2.0)), "init_filters": init_filters_of(state),
                "source": "uploaded (PUT /model/synthseg)"}

    return UploadTarget(path, synthseg_network_for, sidecar)
