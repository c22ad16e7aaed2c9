"""The files vendored for Testing/slicer/on_slicer_core are Slicer's and SlicerElastix's as their README names them
(git blob of each), come with their licences, and none of them is in the extension."""

import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"
MODULE = Path(__file__).resolve().parents[2] / "ElastixMonaiLabel"


def git_blob(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def listed() -> dict[str, set[str]]:
    """Blob -> the file names the README's tables give it."""
    table: dict[str, set[str]] = {}
    for blob, name in re.findall(r"^\| ([0-9a-f]{40}) \| ([^|]+) \|", (VENDOR / "README.md").read_text(), re.M):
        table.setdefault(blob, set()).add(name.strip().replace("\\", ""))
    return table


def test_every_vendored_file_is_the_blob_its_readme_names():
    table = listed()
    files = [p for p in VENDOR.rglob("*") if p.is_file() and p.name != "README.md"]
    assert len(files) == 23
    for path in files:
        blob = git_blob(path)
        assert blob in table, f"{path.relative_to(VENDOR)} ({blob}) is not in vendor/README.md"
        assert any(name.endswith(path.name) for name in table[blob]), (path, table[blob])
    assert "BSD style license" in (VENDOR / "Slicer" / "License.txt").read_text()
    assert (VENDOR / "SlicerElastix" / "LICENSE").read_text().startswith("MIT License")


def test_nothing_vendored_ships_in_the_extension():
    vendored = {git_blob(p) for p in VENDOR.rglob("*.py")}
    assert not [p for p in MODULE.rglob("*.py") if git_blob(p) in vendored]
