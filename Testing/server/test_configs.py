"""The app's settings (MonaiLabelApp/lib/configs.py): every --conf key once, typed, checked at start.

Reads the module directly (it imports only the core), without starting a server.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ElastixMonaiLabelLib.client.local_server import PATH_SETTINGS, SETTING_WORDS
from ElastixMonaiLabelLib.errors import InputError

APP = Path(__file__).resolve().parents[2] / "MonaiLabelApp"
if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))

from lib.configs import CONF_KEYS, PATH_KEYS, PATH_WORDS, AppSettings  # noqa: E402

# The keys and defaults users' commands rely on (README, scripts): they must not change.
DEFAULTS = {
    "atlases": 12, "atlas_spacing": 2.0, "atlas_preset": "atlas-deformable", "cache": None,
    "segmentation_channels": ("t1", "t2", "flair"), "model_dir": None, "max_epochs": 50,
    "train_on_registration_labels": False, "synthseg_label_maps": None, "synthseg_minutes": 30.0,
    "synthseg_real_fraction": 0.0, "synthseg_weights": None, "synthseg": "auto", "synthseg_checkout": None,
    "synthseg_python": None, "auth_token": None, "allowed_hosts": (), "cors_origins": (), "max_upload_mb": 1024.0,
    "max_voxels": 2**27,
}


def test_the_core_client_makes_exactly_the_apps_path_settings_absolute():
    assert set(PATH_SETTINGS) == PATH_KEYS
    assert set(SETTING_WORDS) == set(PATH_WORDS)


def test_every_key_once_with_its_default_and_meaning():
    assert [key.name for key in CONF_KEYS] == list(DEFAULTS)
    settings = AppSettings.from_conf({}, environ={})
    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS
    assert all(key.meaning and key.type for key in CONF_KEYS)


def test_values_are_typed_and_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = AppSettings.from_conf({
        "atlases": "3", "atlas_spacing": "3", "cache": "atlas-cache", "segmentation_channels": "T1w, flair",
        "max_voxels": "1e6", "synthseg_weights": "none", "synthseg_label_maps": "maps/*.nii.gz", "synthseg": "OFF",
        "train_on_registration_labels": "yes", "allowed_hosts": "Example.org, [::2], *",
        "cors_origins": "http://localhost:3000/", "max_upload_mb": "16", "auth_token": "",
    }, environ={"ELASTIXMONAILABEL_TOKEN": " from-the-environment "})
    assert settings.atlases == 3 and settings.atlas_spacing == 3.0 and settings.max_voxels == 10**6
    assert settings.cache == tmp_path / "atlas-cache"
    assert settings.synthseg_label_maps == str(tmp_path / "maps" / "*.nii.gz")
    assert settings.synthseg_weights == "none" and settings.synthseg == "off"
    assert settings.segmentation_channels == ("T1w", "flair") and settings.train_on_registration_labels is True
    assert settings.allowed_hosts == ("example.org", "::2", "*") and settings.cors_origins == ("http://localhost:3000",)
    assert settings.auth_token == "from-the-environment"
    assert AppSettings.from_conf({"auth_token": "given"}, environ={"ELASTIXMONAILABEL_TOKEN": "other"}).auth_token == "given"
    with pytest.raises(AttributeError):
        settings.atlases = 4  # frozen


@pytest.mark.parametrize("key, value, problem", [
    ("atlases", "many", "not a whole number"), ("atlases", "0", "must be 1 or more"), ("max_epochs", "2.5", "whole"),
    ("atlas_spacing", "-1", "more than 0"), ("atlas_preset", "brain-fast", "not a registration preset"),
    ("synthseg_real_fraction", "1.5", "between 0 and 1"), ("synthseg", "yes", "one of auto, on, off"),
    ("train_on_registration_labels", "perhaps", "true or false"), ("cors_origins", "localhost:3000", "not an origin"),
    ("max_upload_mb", "inf", "not a finite number"), ("max_voxels", "4", "8 or more"),
    ("segmentation_channels", ",", "names no channel"),
])
def test_a_bad_value_stops_the_start_naming_the_key_and_value(key, value, problem):
    with pytest.raises(InputError, match=f"^--conf {key} {re.escape(value)}: .*{problem}"):
        AppSettings.from_conf({key: value}, environ={})


def test_no_other_module_of_the_app_reads_the_conf():
    readers = [path.relative_to(APP) for path in sorted(APP.rglob("*.py")) if path.name != "configs.py"
               and re.search(r"\bconf(\.get\(|\[)", path.read_text(encoding="utf-8"))]
    assert readers == []
