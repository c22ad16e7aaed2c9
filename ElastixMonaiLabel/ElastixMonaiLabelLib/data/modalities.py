"""Modality names: the contrasts the project knows, the names they go by, and the checks a case's names pass.

One place for the names a file or a user may give a modality ('T1w', 'T2-FLAIR', 'T1Gd'...)
and their canonical channel names (t1, t1ce, t2, flair), used by the case contract
(:mod:`.multimodal`), the command line's guesses from file names, the Slicer module's inputs
table and the server's models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import InputError

# The contrasts the project synthesises (sample subjects, atlases; in this order) and that the
# atlas and SynthSeg models can match a case's channel with.
CONTRASTS = ("t1", "t2", "flair")

# Names modalities go by in file names and DICOM series descriptions -> canonical channel name.
MODALITY_ALIASES = {
    "t1": ("t1", "t1w", "t1n", "mprage", "t1native"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1post", "t1contrast", "t1postcontrast", "t1ce3d"),
    "t2": ("t2", "t2w", "t2tse"),
    "flair": ("flair", "t2f", "t2flair"),
}


def canonical_channel(name: str) -> str:
    """'T1w' -> 't1', 'T2-FLAIR' -> 'flair', 'T1Gd' -> 't1ce'; unknown names lowercased as they are."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for canonical, aliases in MODALITY_ALIASES.items():
        if key in aliases:
            return canonical
    return key or name.lower()


def guess_modality(name: str) -> str | None:
    """The modality a volume's name suggests, or None.

    'BraTS2021_00000_t1ce' -> 't1ce', 'sub-01_acq-TSE_T2w' -> 't2', 'AX T2 FLAIR' -> 'flair',
    'T1 post contrast' -> 't1ce', 't1_mprage_sag' -> 't1'. Two-word names ('T2 FLAIR', 'T1 post')
    win over one word; later words win over earlier ones (BIDS puts the suffix last).
    """
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    for size in (2, 1):
        for start in range(len(words) - size, -1, -1):
            key = "".join(words[start:start + size])
            for canonical, aliases in MODALITY_ALIASES.items():
                if key in aliases:
                    return canonical
    compact = "".join(words)
    for canonical, marker in (("flair", "flair"), ("t1", "mprage")):
        if marker in compact:
            return canonical
    return None


def check_modality_names(names: Sequence[str]) -> list[str]:
    """Canonical channel names for a case (reference first); InputError for empty, odd or repeated names."""
    canonical = []
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name or ""):
            raise InputError("modalities", f"{name!r} is not a usable modality name (letters, digits, '_', '-', e.g. t1, flair)")
        canonical.append(canonical_channel(name))
    repeated = sorted({n for n in canonical if canonical.count(n) > 1})
    if repeated:
        raise InputError("modalities", f"each modality may appear once; repeated: {', '.join(repeated)}")
    return canonical
