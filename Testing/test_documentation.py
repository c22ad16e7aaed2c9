"""The README is short and leads to every documentation page; every link in the documentation resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_the_readme_fits_on_a_screen_or_two():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 200


def test_the_readme_links_every_documentation_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {(ROOT / target).resolve() for target, _ in LINK.findall(readme)}
    assert PAGES and not [page.name for page in PAGES if page.resolve() not in linked]


@pytest.mark.parametrize("path", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_every_relative_link_names_a_file_that_exists(path):
    text = path.read_text(encoding="utf-8")
    broken = [target for target, _ in LINK.findall(text)
              if "://" not in target and not (path.parent / target).exists()]
    assert not broken, f"{path.name} links to missing files: {broken}"


@pytest.mark.parametrize("path", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_documentation_speaks_to_users_not_to_the_tracker(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bissues? #?\d+\b", text, re.I), "tracker numbers mean nothing to a user"
    assert "../shared" not in text, "a user's checkout has no ../shared"
