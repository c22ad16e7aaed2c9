"""The app's datastore: MONAI Label's local datastore with the checks it lacks.

- Every image id and label tag passes the core's rule (ElastixMonaiLabelLib.data.datastore_names)
  and every file it names resolves inside the datastore: ``../x``, absolute ids and links
  pointing elsewhere are refused (BadRequest/Forbidden: HTTP 400/403), whichever endpoint they come through.
- Uploads and labels are checked before anything is stored (lib.datastore.volume_checks).
- Nothing reviewed is lost silently: a different image under an existing id is refused
  (Conflict, 409) unless the upload's params say ``"replace": true``; deleting an image that has a
  final label, or a final label itself, needs ``force``; and whatever is replaced or deleted
  is moved, with its metadata, into a ``.history`` folder beside it
  (``labels/final/.history/ID.<UTC time>.nii.gz`` and ``.json``).
- Files are written under a temporary name and renamed, the index (datastore_v2.json) too;
  an index that cannot be read (e.g. truncated) is rebuilt from the files on disk, keeping
  the metadata that survives, with a warning (the damaged file is kept beside it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock
from monailabel.datastore.local import DataModel, ImageLabelModel, LocalDatastore, LocalDatastoreModel
from monailabel.interfaces.datastore import DefaultLabelTag

from ElastixMonaiLabelLib.data.datastore_names import check_image_id, check_label_tag, is_valid_image_id, path_inside
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.runtime.files import write_text

from ..http.errors import BadRequest, Conflict, Forbidden, InvalidRequest, NotFound
from ..http.params import yes_no
from .volume_checks import VolumeLimits, check_image_file, check_label_file, nifti_suffix, same_image

logger = logging.getLogger(__name__)

FINAL = DefaultLabelTag.FINAL.value
HISTORY = ".history"


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def move_to_history(path: Path, reason: str, info: dict[str, Any] | None = None) -> Path | None:
    """Move ``path`` into ``.history`` beside it as ``NAME.<UTC time>.EXT``; with ``info``, a JSON of that
    metadata and why beside it. None when there is no such file."""
    if not path.exists():
        return None
    history = path.parent / HISTORY
    history.mkdir(exist_ok=True)
    name = path.name
    ext = next((e for e in (".nii.gz", ".nii", ".nrrd") if name.lower().endswith(e)), path.suffix)
    stamp = utc_stamp()
    target = history / f"{name[:len(name) - len(ext)]}.{stamp}{ext}"
    os.replace(path, target)
    if info is not None:
        write_text(target.with_name(target.name[: len(target.name) - len(ext)] + ".json"),
                   json.dumps({"file": name, "reason": reason, "moved_at": stamp, "info": info}, indent=2, default=str))
    logger.info(f"kept {path} as {target} ({reason})")
    return target


def _complete_members(text: str, start: int) -> tuple[dict[str, Any], int | None]:
    """The members of the JSON object at ``text[start]`` that parse completely, and where it ends
    (None when it is cut off). The ``objects`` member is read the same way, entry by entry."""
    decoder = json.JSONDecoder()
    members: dict[str, Any] = {}
    index = start + 1
    try:
        while True:
            while text[index] in " \t\r\n,":
                index += 1
            if text[index] == "}":
                return members, index + 1
            key, index = decoder.raw_decode(text, index)
            while text[index] in " \t\r\n":
                index += 1
            if text[index] != ":":
                return members, None
            index += 1
            while text[index] in " \t\r\n":
                index += 1
            if key == "objects" and text[index] == "{":
                members[key], end = _complete_members(text, index)
                if end is None:
                    return members, None
                index = end
                continue
            members[key], index = decoder.raw_decode(text, index)
    except (ValueError, IndexError):
        return members, None


def salvage_index(text: str) -> tuple[LocalDatastoreModel, int]:
    """What survives of a damaged index: its settings and every image entry that still parses."""
    start = text.find("{")
    members = _complete_members(text, start)[0] if start >= 0 else {}
    objects = {}
    entries = members.get("objects") if isinstance(members.get("objects"), dict) else {}
    for image_id, entry in entries.items():
        try:
            objects[image_id] = ImageLabelModel.model_validate(entry)
        except ValueError:
            continue
    settings = {k: members[k] for k in ("name", "description", "images_dir", "labels_dir") if isinstance(members.get(k), str)}
    model = LocalDatastoreModel(**{"name": "new-dataset", "description": "New Dataset", **settings}, objects=objects)
    return model, len(entries)


def recover_index(path: Path) -> None:
    """Replace an unreadable index by what can be salvaged from it (the damaged file is kept)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        LocalDatastoreModel.model_validate_json(text)
        return
    except ValueError as error:
        problem = str(error).splitlines()[0]
    model, seen = salvage_index(text)
    backup = path.with_name(f"{path.name}.damaged-{utc_stamp()}")
    shutil.copyfile(path, backup)
    write_text(path, json.dumps(model.model_dump(exclude={"base_path"}), indent=2, default=str))
    logger.warning(f"datastore index {path} could not be read ({problem}); rebuilt from the files on disk, keeping the "
                   f"metadata of {len(model.objects)} image(s) that survived ({seen} found); damaged file kept as {backup.name}")


class SafeDatastore(LocalDatastore):
    """LocalDatastore whose every id, tag, file and overwrite is checked (see the module docstring)."""

    def __init__(self, studies: str, *, label_values: Iterable[int], limits: VolumeLimits, **kwargs: Any) -> None:
        self._root = Path(os.path.realpath(studies))
        self._label_values = frozenset(label_values)
        self._limits = limits
        super().__init__(str(self._root), **kwargs)
        odd = [i for i in self._datastore.objects if not is_valid_image_id(i)]
        if odd:
            logger.warning(f"{len(odd)} file(s) in the datastore have names the server will not serve (ids must be "
                           f"letters, digits, '_', '-', '+', '.'): {', '.join(sorted(odd)[:10])}; rename them")

    # -- names ------------------------------------------------------------------------------

    @staticmethod
    def _check(check, value: Any, what: str) -> str:
        try:
            return check(value, what)
        except InputError as error:
            raise BadRequest(str(error)) from error

    def _image_id(self, image_id: Any) -> str:
        return self._check(check_image_id, image_id, "image id")

    def _tag(self, tag: Any) -> str:
        return self._check(check_label_tag, tag, "label tag")

    def _object(self, image_id: Any) -> ImageLabelModel:
        obj = self._datastore.objects.get(self._image_id(image_id))
        if obj is None:
            raise NotFound(f"image {image_id!r} is not in the datastore")
        return obj

    def _inside(self, *parts: str) -> Path:
        try:
            return path_inside(self._root, *parts)
        except InputError as error:
            raise Forbidden(f"refused: {error}") from error

    def _image_path(self, image_id: str, ext: str) -> Path:
        return self._inside(self._datastore.images_dir, image_id + ext)

    def _label_dir(self, tag: str) -> Path:
        return self._inside(self._datastore.labels_dir, tag)

    # -- reads ------------------------------------------------------------------------------

    def get_image_uri(self, image_id: str) -> str:
        self._image_id(image_id)
        obj = self._datastore.objects.get(image_id)
        return str(self._image_path(image_id, obj.image.ext).resolve()) if obj else ""

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        self._image_id(label_id)
        self._tag(label_tag)
        label = self._datastore.label(label_id, label_tag)
        return str(self._inside(self._datastore.labels_dir, label_tag, label_id + label.ext).resolve()) if label else ""

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        self._object(image_id)
        return super().get_image_info(image_id)

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        self._object(label_id)
        self._tag(label_tag)
        if not self._datastore.label(label_id, label_tag):
            raise NotFound(f"image {label_id!r} has no {label_tag!r} label")
        return super().get_label_info(label_id, label_tag)

    def get_labels_by_image_id(self, image_id: str) -> dict[str, str]:
        self._image_id(image_id)
        return super().get_labels_by_image_id(image_id)

    def get_label_by_image_id(self, image_id: str, tag: str) -> str:
        self._tag(tag)
        return super().get_label_by_image_id(image_id, tag)

    def get_dataset_archive(self, limit_cases: int | None) -> str:
        if not self.datalist():
            raise NotFound("no image has a final label yet: nothing to put in the archive")
        return super().get_dataset_archive(limit_cases)

    # -- metadata ---------------------------------------------------------------------------

    @staticmethod
    def _info(info: Any, what: str) -> dict[str, Any]:
        if info is None:
            return {}
        if not isinstance(info, dict):
            raise InvalidRequest(f"{what} must be a JSON object, not {type(info).__name__}")
        return dict(info)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._object(image_id)
        return super().update_image_info(image_id, self._info(info, "image info"))

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        self.get_label_info(label_id, label_tag)
        return super().update_label_info(label_id, label_tag, self._info(info, "label info"))

    # -- writes -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _staged(self, source: str, folder: Path, name: str) -> Iterator[Path]:
        """A copy of ``source`` named ``name`` in a hidden folder of ``folder`` (same file system, so it can be
        renamed into place; hidden, so the datastore's file watcher never takes it for an image)."""
        staging = folder / f".incoming-{uuid.uuid4().hex[:12]}"
        staging.mkdir(parents=True)
        try:
            staged = staging / name
            shutil.copyfile(source, staged)
            yield staged
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _archive(path: Path, info: dict[str, Any], reason: str) -> Path | None:
        """Move ``path`` into ``.history`` beside it, with a JSON of its metadata and why it went there."""
        return move_to_history(path, reason, info)

    def _archive_image(self, image_id: str, obj: ImageLabelModel, reason: str) -> list[str]:
        moved = []
        for tag, label in obj.labels.items():
            target = self._archive(self._inside(self._datastore.labels_dir, tag, image_id + label.ext), label.info, reason)
            moved += [str(target.relative_to(self._root))] if target else []
        target = self._archive(self._image_path(image_id, obj.image.ext), obj.image.info, reason)
        moved += [str(target.relative_to(self._root))] if target else []
        return moved

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        info = self._info(image_info, "params")
        replace = yes_no(info.pop("replace", None), "params.replace")
        if not image_id:
            raise InvalidRequest("the image needs an id: give ?image=ID")
        image_id = self._image_id(image_id)
        suffix = nifti_suffix(image_filename, f"upload for {image_id!r}")
        dest = self._image_path(image_id, suffix)
        with self._staged(image_filename, dest.parent, image_id + suffix) as staged:
            checked = check_image_file(staged, self._limits, f"upload for {image_id!r}")
            with FileLock(self._lock_file):
                obj = self._datastore.objects.get(image_id)
                # The files this id names now: either extension (or another case's, on a case-insensitive disk).
                extensions = {".nii.gz", ".nii", *([obj.image.ext] if obj else [])}
                current = sorted(p for p in (self._image_path(image_id, e) for e in extensions) if p.exists())
                if any(same_image(p, staged) for p in current):
                    logger.info(f"image {image_id} uploaded again, unchanged: kept as it is")
                    return image_id
                if current:
                    labels = sorted(obj.labels) if obj else []
                    if not replace:
                        raise Conflict(
                                       f"image id {image_id!r} already holds a different image"
                            + (f" with labels ({', '.join(labels)})" if labels else "")
                            + ": upload it under another id, or send params {\"replace\": true} to replace it (the old "
                              "image and its labels are then moved to .history, not deleted)")
                    reason = f"replaced by a new upload under id {image_id}"
                    moved = self._archive_image(image_id, obj, reason) if obj else []
                    moved += [str(self._archive(p, {}, reason).relative_to(self._root)) for p in current if p.exists()]
                    logger.warning(f"image {image_id} replaced on request; moved to history: {', '.join(moved)}")
                    self._datastore.objects.pop(image_id, None)
                os.replace(staged, dest)
                info.update({"ts": int(datetime.now().timestamp()), "name": dest.name, "shape": list(checked.shape),
                             "channels": checked.channels})
                self._datastore.objects[image_id] = ImageLabelModel(image=DataModel(info=info, ext=suffix))
                self._update_datastore_file(lock=False)
        return image_id

    def remove_image(self, image_id: str, force: bool = False) -> None:
        obj = self._object(image_id)
        if FINAL in obj.labels and not force:
            raise Conflict(
                           f"image {image_id!r} has a reviewed (final) label: deleting it needs force=true (the image and its labels "
                           "are then moved to .history, not deleted)")
        with FileLock(self._lock_file):
            moved = self._archive_image(image_id, obj, "deleted" + (" (force)" if force else ""))
            self._datastore.objects.pop(image_id, None)
            self._update_datastore_file(lock=False)
        logger.info(f"image {image_id} deleted; moved to history: {', '.join(moved)}")

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        obj = self._object(image_id)
        tag = self._tag(label_tag or FINAL)
        info = self._info(label_info, "params")
        image_path = self._image_path(image_id, obj.image.ext)
        source = f"label {tag!r} for {image_id!r}"
        suffix = nifti_suffix(label_filename, source)
        folder = self._label_dir(tag)
        folder.mkdir(parents=True, exist_ok=True)
        dest = self._inside(self._datastore.labels_dir, tag, image_id + suffix)
        with self._staged(label_filename, folder, image_id + suffix) as staged:
            check_label_file(staged, image_path, self._label_values, source)
            with FileLock(self._lock_file):
                previous = obj.labels.get(tag)
                stale = {self._inside(self._datastore.labels_dir, tag, image_id + e) for e in (".nii.gz", ".nii")}
                for path in sorted(p for p in stale if p.exists()):
                    self._archive(path, previous.info if previous else {}, f"replaced by a new {tag} label")
                os.replace(staged, dest)
                info.update({"ts": int(datetime.now().timestamp()), "name": dest.name})
                obj.labels[tag] = DataModel(info=info, ext=suffix)
                self._update_datastore_file(lock=False)
        return image_id

    def remove_label(self, label_id: str, label_tag: str, force: bool = False) -> None:
        obj = self._object(label_id)
        tag = self._tag(label_tag)
        label = obj.labels.get(tag)
        if label is None:
            raise NotFound(f"image {label_id!r} has no {tag!r} label")
        if tag == FINAL and not force:
            raise Conflict(
                           f"the final label of {label_id!r} is a reviewed label: deleting it needs force=true (it is then moved to "
                           "labels/final/.history, not deleted)")
        with FileLock(self._lock_file):
            self._archive(self._inside(self._datastore.labels_dir, tag, label_id + label.ext), label.info, "deleted")
            obj.labels.pop(tag, None)
            self._update_datastore_file(lock=False)

    # -- the index --------------------------------------------------------------------------

    def _init_from_datastore_file(self, throw_exception: bool = False) -> None:
        try:
            super()._init_from_datastore_file(throw_exception=True)
        except ValueError:
            # Unreadable (e.g. truncated by a crash during a write): salvage it and go on.
            with FileLock(self._lock_file):
                recover_index(Path(self._datastore_config_path))
            self._config_ts = 0
            super()._init_from_datastore_file(throw_exception=throw_exception)

    def _update_datastore_file(self, lock: bool = True) -> None:
        """Write the index under a temporary name, then rename it: a crash never leaves it half-written."""

        def write() -> None:
            text = json.dumps(self._datastore.model_dump(exclude={"base_path"}), indent=2, default=str)
            write_text(Path(self._datastore_config_path), text)
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

        if lock:
            with FileLock(self._lock_file):
                write()
        else:
            write()
