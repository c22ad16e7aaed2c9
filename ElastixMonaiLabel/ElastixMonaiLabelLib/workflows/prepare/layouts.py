"""Dataset layouts: where each case's modalities and labels are in a dataset folder.

BraTS 2021 (``<case>/<case>_t1.nii.gz``), BraTS 2023 (``<case>/<case>-t1n.nii.gz``), OASIS-3
(BIDS-like ``sub-*_ses-*_..._T1w.nii.gz`` anywhere below) and a generic layout (one folder per
case, files named by modality). Modality names are read with :mod:`...data.modalities`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ...data.modalities import canonical_channel
from ...errors import InputError

LAYOUTS = ("brats2021", "brats2023", "oasis3", "generic")
DEFAULT_CHANNELS = {
    "brats2021": ("t1", "t1ce", "t2", "flair"),
    "brats2023": ("t1", "t1ce", "t2", "flair"),
    "oasis3": ("t1", "t2", "flair"),
    "generic": ("t1", "t2", "flair"),
}
# Layouts whose modalities come co-registered on one grid (BraTS: SRI24, 1 mm): kept as they are
# unless registration is asked for. Re-registering them moves them 1-2 mm away from the BraTS
# alignment, which is not the mutual-information optimum.
CO_REGISTERED_LAYOUTS = ("brats2021", "brats2023")
_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


@dataclass
class Case:
    case_id: str
    modalities: dict[str, Path] = field(default_factory=dict)
    labels: Path | None = None
    problems: list[str] = field(default_factory=list)


def _stem(path: Path) -> str:
    return _NIFTI.sub("", path.name)


def _brats(folder: Path, separator: str) -> list[Case]:
    cases = []
    for case_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        case = Case(case_dir.name)
        for path in sorted(case_dir.iterdir()):
            if not _NIFTI.search(path.name):
                continue
            suffix = _stem(path).rsplit(separator, 1)[-1]
            if "seg" in suffix.lower():
                continue  # label files (BraTS tumour seg, SynthSeg outputs) are not channels
            case.modalities.setdefault(canonical_channel(suffix), path)
        cases.append(case)
    return cases


_OASIS = re.compile(r"^(sub-[^_]+)_(ses-[^_]+)_.*?([^_]+)$")


def _oasis3(folder: Path) -> list[Case]:
    cases: dict[str, Case] = {}
    for path in sorted(folder.rglob("*.nii*")):
        match = _OASIS.match(_stem(path))
        if not match or not _NIFTI.search(path.name) or "seg" in match.group(3).lower():
            continue
        case_id = f"{match.group(1)}_{match.group(2)}"
        modality = canonical_channel(match.group(3))
        case = cases.setdefault(case_id, Case(case_id))
        if modality in case.modalities:
            case.problems.append(f"several {modality} files ({case.modalities[modality].name}, {path.name}); the first is used")
        else:
            case.modalities[modality] = path
    return list(cases.values())


def _generic(folder: Path, label_pattern: str | None) -> list[Case]:
    cases = []
    for case_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        case = Case(case_dir.name)
        labels = set(case_dir.glob(label_pattern)) if label_pattern else set()
        for path in sorted(case_dir.iterdir()):
            if _NIFTI.search(path.name) and path not in labels and "seg" not in _stem(path).lower():
                token = re.split(r"[_\-.]", _stem(path))[-1]
                case.modalities.setdefault(canonical_channel(token), path)
        cases.append(case)
    return cases


def find_cases(source: str | Path, layout: str, label_pattern: str | None = None) -> list[Case]:
    """Cases of a dataset folder in a known layout, with their modality files and labels."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(source, "dataset folder not found")
    if layout == "brats2021":
        cases = _brats(source, "_")
    elif layout == "brats2023":
        cases = _brats(source, "-")
    elif layout == "oasis3":
        cases = _oasis3(source)
    elif layout == "generic":
        cases = _generic(source, label_pattern)
    else:
        raise InputError("layout", f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if label_pattern:
        for case in cases:
            folder = next(iter(case.modalities.values())).parent if case.modalities else source / case.case_id
            found = sorted(folder.glob(label_pattern)) or sorted(folder.glob(f"{case.case_id}*{label_pattern.lstrip('*')}"))
            case.labels = found[0] if found else None
    return cases
