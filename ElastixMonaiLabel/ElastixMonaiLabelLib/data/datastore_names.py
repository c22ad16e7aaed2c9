"""The one rule for names that become files in a MONAI Label datastore: image ids and label tags.

MONAI Label's local datastore joins an image id and a label tag into file paths
(``<datastore>/<id>.nii.gz``, ``<datastore>/labels/<tag>/<id>.nii.gz``) as they are, so
``../x`` or an absolute path would reach outside it. Every name that becomes a path
passes here first: the server app (each endpoint that takes an id or a tag) and the
core's own datastore writes (``prepare``, :func:`.multimodal.case_id`).

An id is a letter or digit, then letters, digits, ``_ - + .`` (at most 128 characters,
no ``..``, no trailing dot, no NIfTI extension inside, since MONAI Label strips those
from file names to find ids); a tag is a letter or digit then letters, digits, ``_ -``
(at most 64). Neither can hold a path separator, so the file stays in its folder;
:func:`path_inside` checks that too, symbolic links resolved.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InputError

MAX_ID_LENGTH = 128
MAX_TAG_LENGTH = 64
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_+.\-]{{0,{MAX_ID_LENGTH - 1}}}")
_TAG = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_\-]{{0,{MAX_TAG_LENGTH - 1}}}")
ID_RULE = (f"1-{MAX_ID_LENGTH} characters: letters, digits, '_', '-', '+', '.' (starting with a letter or digit; "
           "no '..', no trailing '.', no '.nii')")
TAG_RULE = f"1-{MAX_TAG_LENGTH} characters: letters, digits, '_', '-' (starting with a letter or digit)"


class DatastoreNameError(InputError):
    """An image id or label tag that cannot be a datastore file name."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_image_id(value: object, what: str = "image id") -> str:
    """``value`` if it is a valid image id, else InputError saying why."""
    if not isinstance(value, str) or not _ID.fullmatch(value) or ".." in value or value.endswith(".") \
            or ".nii" in value.lower():
        raise DatastoreNameError(what, f"{_shown(value)} is not a valid image id ({ID_RULE})")
    return value


def check_label_tag(value: object, what: str = "label tag") -> str:
    """``value`` if it is a valid label tag, else InputError saying why."""
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise DatastoreNameError(what, f"{_shown(value)} is not a valid label tag ({TAG_RULE})")
    return value


def is_valid_image_id(value: object) -> bool:
    try:
        check_image_id(value)
    except InputError:
        return False
    return True


def path_inside(folder: str | Path, *names: str) -> Path:
    """``folder/names...``, checked to stay inside ``folder`` once symbolic links are resolved.

    The names are joined as they are (callers check them with the rules above first);
    a result outside ``folder`` (``..``, an absolute name, a link pointing elsewhere)
    is an InputError.
    """
    root = Path(os.path.realpath(folder))
    path = Path(folder).joinpath(*names)
    resolved = Path(os.path.realpath(path))
    if resolved != root and root not in resolved.parents:
        raise DatastoreNameError(str(path), f"resolves to {resolved}, outside {root}")
    return path
