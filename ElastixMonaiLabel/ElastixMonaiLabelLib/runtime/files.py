"""Writing outputs safely: nothing half-written ever carries a final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError


def _suffixes(name: str) -> str:
    # Keep compound extensions (".nii.gz") so that writers that pick their format
    # from the file name still see the right one on the temporary file.
    path = Path(name)
    return "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` keeps whatever it
    held before.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}{_suffixes(path.name)}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically, on disk before it takes its name (an index or a summary
    survives a crash whole: the old text or the new)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def ensure_output_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise InputError(path, f"output folder is not writable ({error.strerror or error})") from error
    return path
