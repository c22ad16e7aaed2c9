"""Every ``--conf`` setting the app reads, declared once: name, type, default, whether it is a path, meaning.

MONAI Label hands the app its ``--conf KEY VALUE`` pairs as a dict of strings.
``AppSettings.from_conf`` reads them all, here and nowhere else, into one typed, frozen
object; a value that cannot be used stops the server's start with
``--conf KEY VALUE: problem`` (the core's ``InputError``). Each setting is a field of
``AppSettings`` whose name is the key, whose annotation is its type and whose default is
what an absent key means; ``CONF_KEYS`` lists them with their meanings.

Path settings are made absolute when read (a relative one means the folder the server was
started in). The core's client makes the same keys absolute before it starts a server from
another folder (``ElastixMonaiLabelLib.client.local_server.PATH_SETTINGS``);
Testing/server/test_configs.py checks that both name the same keys.

Imports only the standard library and the core (no torch, MONAI or MONAI Label): the
project's tests and tools read it anywhere.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ElastixMonaiLabelLib.client.rest import TOKEN_ENVIRONMENT_VARIABLE
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.segmentation.atlases import ATLAS_SPACING_MM, DEFAULT_ATLASES

logger = logging.getLogger(__name__)

# Words a path setting may take instead of a path (kept as they are, not made absolute).
PATH_WORDS = ("none", "off", "auto", "on", "")
# Keys MONAI Label itself reads from the same --conf pairs (not the app's: no warning for them).
MONAI_LABEL_KEYS = frozenset({"server_mode", "preload", "zoo_repo", "zoo_source"})


# -- how a value is read: text in, typed value out, ValueError("problem") otherwise -----------------

def whole_number(minimum: int) -> Callable[[str], int]:
    """An int >= ``minimum`` ('1e6' and '50.0' are whole numbers too)."""

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("not a whole number")
        if value < minimum:
            raise ValueError(f"must be {minimum} or more")
        return int(value)

    return parse


def number(minimum: float, maximum: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """A float >= ``minimum`` (> with ``above``) and <= ``maximum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if maximum is not None and not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum:g} and {maximum:g}")
        if not (value > minimum if above else value >= minimum):
            raise ValueError(f"must be more than {minimum:g}" if above else f"must be {minimum:g} or more")
        return value

    return parse


def yes_or_no(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise ValueError("must be true or false")


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def text_or_none(text: str) -> str | None:
    return text or None


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def channel_names(text: str) -> tuple[str, ...]:
    found = names(text)
    if not found:
        raise ValueError("names no channel (e.g. t1,t2,flair)")
    return found


def preset_name(text: str) -> str:
    from ElastixMonaiLabelLib.registration.presets import list_presets

    known = [preset.name for preset in list_presets()]
    if text not in known:
        raise ValueError(f"not a registration preset ({', '.join(known)})")
    return text


def host_names(text: str) -> tuple[str, ...]:
    """Host names as the guard compares them: lower case, IPv6 without brackets ('*': any host)."""
    return tuple(name.lower().strip("[]") for name in names(text))


def origins(text: str) -> tuple[str, ...]:
    found = tuple(origin.rstrip("/") for origin in names(text))
    for origin in found:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise ValueError(f"{origin!r} is not an origin (e.g. http://localhost:3000)")
    return found


def folder_or_default(text: str) -> Path | None:
    return Path(text) if text else None


# -- the settings ------------------------------------------------------------------------------------

def setting(default: Any, meaning: str, parse: Callable[[str], Any], *, path: bool = False) -> Any:
    """A field of :class:`AppSettings`: its default, its one-line meaning, how its text is read, and
    whether it names a file or folder (made absolute)."""
    return dataclasses.field(default=default, metadata={"meaning": meaning, "parse": parse, "path": path})


@dataclass(frozen=True)
class AppSettings:
    """The app's settings, one field per ``--conf`` key (the field's name is the key)."""

    # atlas_registration
    atlases: int = setting(DEFAULT_ATLASES, "how many labelled atlases atlas_registration registers and lets vote",
                           whole_number(1))
    atlas_spacing: float = setting(ATLAS_SPACING_MM, "the atlases' voxel size in mm", number(0, above=True))
    atlas_preset: str = setting("atlas-deformable", "the registration preset atlas_registration uses by default",
                              preset_name)
    cache: Path | None = setting(None, "folder of things built once (the atlases); default: the user's cache folder "
                                       "($ELASTIXMONAILABEL_CACHE, else ~/.cache/elastix-monailabel)",
                                 folder_or_default, path=True)
    # segmentation (trained here)
    segmentation_channels: tuple[str, ...] = setting(("t1", "t2", "flair"), "the channels the segmentation model reads, "
                                                     "in its order (the datastore's, see prepare --channels)",
                                                     channel_names)
    model_dir: Path | None = setting(None, "folder of the models trained or uploaded here; default: DATASTORE/.models",
                                     folder_or_default, path=True)
    max_epochs: int = setting(50, "epochs of a segmentation training run", whole_number(1))
    train_on_registration_labels: bool = setting(False, "segmentation also trains on the labels atlas_registration "
                                                        "saved (tag 'original') of images without a final label",
                                                 yes_or_no)
    # synthseg (contrast-agnostic, trained from label maps)
    synthseg_label_maps: str | None = setting(None, "a glob of label maps synthseg trains on besides the shipped ones",
                                              text_or_none, path=True)
    synthseg_minutes: float = setting(30.0, "minutes of a synthseg training run", number(0, above=True))
    synthseg_real_fraction: float = setting(0.0, "share of synthseg training iterations on the datastore's labelled "
                                                 "images (0..1)", number(0, 1))
    synthseg_weights: str | None = setting(None, "synthseg's weights when none was trained here: a file with its JSON "
                                                 "beside it, or 'none'; default: the weights shipped with the app",
                                           text_or_none, path=True)
    # mri_synthseg (the user's own SynthSeg)
    synthseg: str = setting("auto", "offer mri_synthseg: auto (where SynthSeg is found), on (must be found), off",
                            one_of("auto", "on", "off"))
    synthseg_checkout: str | None = setting(None, "a SynthSeg checkout (with its weights) mri_synthseg runs",
                                            text_or_none, path=True)
    synthseg_python: str | None = setting(None, "the Python that runs synthseg_checkout (a program name or a path)",
                                          text_or_none)
    # access (lib.http.guard)
    auth_token: str | None = setting(None, "the token every request must send (Authorization: Bearer); default: "
                                           f"${TOKEN_ENVIRONMENT_VARIABLE}, else none", text_or_none)
    allowed_hosts: tuple[str, ...] = setting((), "host names the server answers besides localhost, 127.0.0.1, ::1 "
                                                 "('*': any)", host_names)
    cors_origins: tuple[str, ...] = setting((), "browser origins allowed besides the server's own", origins)
    max_upload_mb: float = setting(1024.0, "the largest request body, in MB", number(0, above=True))
    # what the datastore keeps (lib.datastore.volume_checks)
    max_voxels: int = setting(2**27, "the largest image, in voxels over all channels (2^27: 512^3 in one channel, or "
                                     "a 1 mm brain with 16 channels and more)", whole_number(8))

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> AppSettings:
        """The settings ``conf`` (MONAI Label's ``--conf`` pairs) gives; an absent or empty key takes its
        default. Raises ``InputError("--conf KEY VALUE", problem)`` for a value that cannot be used."""
        values = {}
        for key in CONF_KEYS:
            text = conf.get(key.name)
            if key.name == "auth_token" and not (text or "").strip():
                text = environ.get(TOKEN_ENVIRONMENT_VARIABLE)
            if text is not None and str(text).strip() != "":
                values[key.name] = key.read(str(text))
        unknown = sorted(set(conf) - {k.name for k in CONF_KEYS} - MONAI_LABEL_KEYS)
        if unknown:
            logger.warning(f"--conf {', '.join(unknown)}: not a setting of this app (ignored); its settings: "
                           f"{', '.join(k.name for k in CONF_KEYS)}")
        settings = cls(**values)
        if settings.auth_token is not None and len(settings.auth_token) < 16:
            logger.warning("the access token is shorter than 16 characters: easy to guess")
        return settings


@dataclass(frozen=True)
class ConfKey:
    """One ``--conf`` key: its name, type, default, whether it is a path, and what it means."""

    name: str
    type: str
    default: Any
    path: bool
    meaning: str
    parse: Callable[[str], Any]

    def read(self, text: str) -> Any:
        """The typed value of ``text``; paths made absolute (words such as 'none' kept as they are)."""
        if self.path and text.strip().lower() not in PATH_WORDS:
            text = os.path.abspath(os.path.expanduser(text))
        try:
            return self.parse(text.strip() if not self.path else text)
        except ValueError as error:
            raise InputError(f"--conf {self.name} {shlex.quote(text)}", str(error)) from None


CONF_KEYS: tuple[ConfKey, ...] = tuple(
    ConfKey(f.name, str(f.type), f.default, f.metadata["path"], f.metadata["meaning"], f.metadata["parse"])
    for f in dataclasses.fields(AppSettings)
)
# The settings that name files or folders (the core's client makes the same ones absolute).
PATH_KEYS = frozenset(key.name for key in CONF_KEYS if key.path)
