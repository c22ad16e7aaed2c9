"""Loading network weights safely: weights only (no pickled code), strictly (every layer, nothing else).

Used for model uploads (PUT /model/{name}: refused unless they load) and whenever a model
is loaded for inference, so a checkpoint that matches no layer can never pass for a model.
A file that cannot be used is an ``InputError`` naming it (HTTP 422 for an upload).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ElastixMonaiLabelLib.errors import InputError

# The synthseg weights shipped with the app (made by lib.synthseg.train on a GPU; their JSON beside them).
SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "synthseg.pt"


def read_state_dict(path: str | Path, source: str | None = None, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a plain state dict, or MONAI Label's ``{"model": state_dict}``.

    Loaded with ``weights_only=True``: a file that needs Python code to load is refused.
    """
    source = source or str(path)
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise InputError(source, "not a weights-only checkpoint: it holds Python objects that would run code when loaded "
                              f"({str(error).splitlines()[0][:200]})") from error
    except Exception as error:  # zip/EOF/type errors of a file that is no checkpoint at all
        raise InputError(source, f"not a PyTorch checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})") from error
    for key in ("model", "state_dict"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, Mapping) or not checkpoint or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items()):
        raise InputError(source, "not a state dict (a mapping of layer names to tensors)")
    return dict(checkpoint)


def load_strictly(network: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> torch.nn.Module:
    """Load ``state`` into ``network``: every layer present with its shape, no extra layer, finite values."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        def shown(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

        problems = [f"{len(missing)} of the network's {len(expected)} layers missing ({shown(missing)})" if missing else "",
                    f"{len(unexpected)} unknown ({shown(unexpected)})" if unexpected else "",
                    f"{len(mismatched)} of another shape ({shown(mismatched)})" if mismatched else ""]
        raise InputError(source, "these weights do not fit the model's network: " + "; ".join(p for p in problems if p))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(source, f"weights hold NaN or infinite values ({', '.join(bad[:5])})")
    network.load_state_dict(state, strict=True)
    return network
