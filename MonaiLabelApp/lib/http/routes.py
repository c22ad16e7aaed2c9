"""The app's versions of MONAI Label endpoints that need more than the datastore's checks.

- JSON form fields (``params``, ``info``) must be JSON objects: 400/422 with the field's name.
- ``DELETE /datastore/image`` and ``DELETE /datastore/label`` take ``force`` (needed for final labels).
- ``POST /infer/{model}`` reads only datastore images (``image`` is an id), a file uploaded with
  the request or a session's file, each checked first; request params cannot override the
  image, the model or a label input.
- ``POST /train/{model}`` answers 404 for an unknown model at once.
- ``PUT /model/{model}`` takes weights only when they load strictly into the model's network;
  the previous weights are kept in ``.history``.
- ``PUT /session/`` keeps one checked case file (never unpacks an archive: MONAI Label's
  ``uncompress`` would write an archive's ``../`` members outside its folder); session ids in
  ``GET``/``DELETE /session/{id}`` and infer's ``session_id`` must be the server's UUIDs.
- Upload file names are reduced to plain characters before MONAI Label names files after them.

The handlers keep MONAI Label's parameter names, so its clients work unchanged.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, List, Optional

from fastapi import BackgroundTasks, Depends, File, Form, UploadFile
from monailabel.config import settings
from monailabel.endpoints import datastore as upstream_datastore
from monailabel.endpoints import session as upstream_session
from monailabel.endpoints import train as upstream_train
from monailabel.endpoints.infer import ResultType, send_response
from monailabel.endpoints.user.auth import RBAC, User
from monailabel.interfaces.utils.app import app_instance

from ElastixMonaiLabelLib.runtime.files import atomic_path, write_text

from ..datastore.safe_datastore import move_to_history
from ..datastore.volume_checks import check_image_file
from ..models.weights import load_strictly, read_state_dict
from .errors import BadRequest, InvalidRequest, NotFound, SwitchedOff

logger = logging.getLogger(__name__)

# The one file path an infer request may name instead of a datastore id: the upload (or session
# file) the infer endpoint itself received. Set by the endpoint, read by the app's infer().
TRUSTED_INPUT: contextvars.ContextVar[str | None] = contextvars.ContextVar("trusted_infer_input", default=None)
# Request params that would replace what the endpoint decided (which image, which model...).
RESERVED_INFER_PARAMS = frozenset({"image", "model", "label", "session", "description", "model_filename"})


def json_object(text: str | None, field: str) -> dict[str, Any]:
    """A form field that must hold a JSON object; 400/422 naming the field otherwise."""
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise BadRequest(f"{field} is not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be a JSON object ({{...}}), not {type(value).__name__}")
    return value


def plain_filename(upload: UploadFile, default: str) -> UploadFile:
    """MONAI Label names its temporary copy after the client's file name (and takes the image id from it
    when none is given): keep letters, digits, '.', '_' and '-' of its last part only."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename((upload.filename or "").replace("\\", "/")))[:100]
    upload.filename = name.lstrip(".") or default
    return upload


# -- datastore --------------------------------------------------------------------------------

def add_image(background_tasks: BackgroundTasks, image: Optional[str] = None, params: str = Form("{}"),
              file: UploadFile = File(...), user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR))):
    """Upload an image; ``params`` may say ``{"replace": true}`` to replace a different image under the same id."""
    json_object(params, "params")
    return upstream_datastore.add_image(background_tasks, image, params, plain_filename(file, "image.nii.gz"), user.username)


def remove_image(id: str, force: bool = False, user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    """Delete an image and its labels (moved to .history); one with a final label needs ``force=true``."""
    logger.info(f"Removing image {id} (force={force}) by {user.username}")
    app_instance().datastore().remove_image(id, force=force)
    return {}


def save_label(background_tasks: BackgroundTasks, image: str, params: str = Form("{}"), tag: str = "final",
               label: UploadFile = File(...), user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR))):
    """Save a label (checked against the image; the label it replaces is kept in .history)."""
    json_object(params, "params")
    return upstream_datastore.save_label(background_tasks, image, params, tag, plain_filename(label, "label.nii.gz"),
                                         user.username)


def remove_label(id: str, tag: str, force: bool = False, user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    """Delete a label (moved to .history); a final label needs ``force=true``."""
    logger.info(f"Removing label {id} {tag} (force={force}) by {user.username}")
    app_instance().datastore().remove_label(id, tag, force=force)
    return {}


def update_image_info(image: str, info: str = Form("{}"), user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR))):
    json_object(info, "info")
    return upstream_datastore.update_image_info(image, info, user.username)


def update_label_info(label: str, tag: str, info: str = Form("{}"),
                      user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR))):
    json_object(info, "info")
    return upstream_datastore.update_label_info(label, tag, info, user.username)


def update_label_info_deprecated(label: str, tag: str, params: str = Form("{}"),
                                 user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ANNOTATOR))):
    json_object(params, "params")
    return upstream_datastore.update_label_info(label, tag, params, user.username)


# -- infer ------------------------------------------------------------------------------------

def _received(upload: UploadFile, background_tasks: BackgroundTasks, limits) -> Path:
    """An uploaded case saved in a folder of its own (removed after the reply), checked, named by its content."""
    folder = Path(tempfile.mkdtemp(prefix="upload-"))
    background_tasks.add_task(shutil.rmtree, folder, True)
    raw = folder / "upload"
    with raw.open("wb") as stream:
        shutil.copyfileobj(upload.file, stream)
    checked = check_image_file(raw, limits, f"uploaded file {upload.filename!r}" if upload.filename else "uploaded file")
    path = folder / f"case{checked.suffix}"
    raw.rename(path)
    return path


async def run_inference(background_tasks: BackgroundTasks, model: str, image: str = "", session_id: str = "",
                        params: str = Form("{}"), file: UploadFile = File(None), label: UploadFile = File(None),
                        output: Optional[ResultType] = None,
                        user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))):
    """Run a model on a datastore image (``image=ID``), an uploaded ``file`` or a session's file."""
    instance = app_instance()
    request_params = json_object(params, "params")
    reserved = sorted(set(request_params) & RESERVED_INFER_PARAMS)
    if reserved:
        raise InvalidRequest(f"params may not set {', '.join(reserved)}: name the image with ?image=ID "
                             "or upload it as the file")
    if label is not None:
        raise InvalidRequest("this app's models take no label input (scribbles)")
    if output == ResultType.dicom_seg:
        raise InvalidRequest("output=dicom_seg needs a DICOMweb datastore; this server's is local")
    trusted = None
    if file is not None:
        trusted = str(_received(file, background_tasks, instance.volume_limits))
    elif session_id:
        session = _sessions(instance).get_session(checked_session_id(session_id))
        if session is None:
            raise NotFound(f"session {session_id!r} not found (expired?)")
        if not Path(session.image).is_file():
            raise InvalidRequest(f"session {session_id!r} holds several files; send one case file")
        check_image_file(session.image, instance.volume_limits, f"session {session_id!r}")
        trusted = session.image
    elif not image:
        raise InvalidRequest("give the image: ?image=ID (a datastore id), or upload it as the file")
    request = {**instance.info().get("config", {}).get("infer", {}), **request_params, "model": model,
               "image": trusted or image}
    token = TRUSTED_INPUT.set(trusted)
    try:
        result = instance.infer(request)
    finally:
        TRUSTED_INPUT.reset(token)
    return send_response(instance.datastore(), result, output, background_tasks)


# -- sessions ---------------------------------------------------------------------------------

# What MONAI Label names a session (Sessions.add_session: str(uuid.uuid1())), and the name of its folder.
SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def checked_session_id(session_id: str) -> str:
    """A session id as the server makes them; 400 otherwise (MONAI Label joins it into a folder path)."""
    if not SESSION_ID.fullmatch(session_id):
        raise BadRequest(f"{session_id[:80]!r} is not a session id (PUT /session/ returns "
                         "one, e.g. '3e8d33f8-ec96-11f1-b9ca-02fc00000001')")
    return session_id


def _sessions(instance):
    sessions = instance.sessions()
    if sessions is None:
        raise SwitchedOff("sessions are off on this server (MONAI_LABEL_SESSIONS=false)")
    return sessions


def create_session(background_tasks: BackgroundTasks, uncompress: bool = False, expiry: int = 0,
                   files: List[UploadFile] = File(...), user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))):
    """Keep one case file (checked like an upload) for ``expiry`` seconds, for infer to read by ``session_id``."""
    instance = app_instance()
    sessions = _sessions(instance)
    if uncompress:
        raise InvalidRequest("this server does not unpack archives (uncompress=true): send the "
                             "case as one NIfTI file (4D for several channels)")
    if len(files) != 1:
        raise InvalidRequest(f"a session holds one case file (a 4D NIfTI for several channels), "
                             f"not {len(files)} files")
    case = _received(files[0], background_tasks, instance.volume_limits)
    session_id, info = sessions.add_session(str(case), expiry, uncompress=False)
    logger.info(f"session {session_id} created by {user.username} (expires after {info.expiry} s without use)")
    return {"session_id": session_id, "session_info": info.to_json()}


def get_session(session_id: str, update_ts: bool = False, image: bool = False,
                user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))):
    """A session's details, or its file with ``image=true``."""
    return upstream_session.get_session(checked_session_id(session_id), update_ts, image)


def remove_session(session_id: str, user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_USER))):
    """Remove a session and its file."""
    return upstream_session.remove_session(checked_session_id(session_id))


# -- training ---------------------------------------------------------------------------------

def run_training(model: str, params: Optional[dict] = None, run_sync: Optional[bool] = False, enqueue: Optional[bool] = False,
                 user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    """Start training a model (an unknown one is 404 now, not a failed task later)."""
    trainers = app_instance().info()["trainers"]
    if model not in trainers:
        raise NotFound(f"unknown trainer {model!r}; available: {', '.join(trainers)}")
    return upstream_train.run_model(model, params, run_sync, enqueue)


# -- models -----------------------------------------------------------------------------------

def update_model(background_tasks: BackgroundTasks, model: str, file: UploadFile, spacing_mm: Optional[float] = None,
                 user: User = Depends(RBAC(settings.MONAI_LABEL_AUTH_ROLE_ADMIN))):
    """Replace a model's weights: only a weights-only checkpoint that loads strictly into its network.

    ``spacing_mm`` (synthseg only): the resolution the weights were trained at (default: the
    current model's, else 2). synthseg takes either width (8 or 16 filters): the weights' own.
    """
    uploads = app_instance().model_uploads
    target = uploads.get(model)
    if target is None:
        raise NotFound(f"model {model!r} has no weights to upload; models with weights: {', '.join(uploads) or 'none'}")
    if spacing_mm is not None and not 0.1 <= spacing_mm <= 10:
        raise InvalidRequest(f"spacing_mm must be between 0.1 and 10, not {spacing_mm}")
    path = target.path
    path.parent.mkdir(parents=True, exist_ok=True)
    source = f"uploaded weights for {model!r}"
    with atomic_path(path) as staged:
        with staged.open("wb") as stream:
            shutil.copyfileobj(file.file, stream)
        state = read_state_dict(staged, source)
        load_strictly(target.network_for(state), state, source)
        previous = move_to_history(path, f"replaced by weights uploaded by {user.username}")
    if target.sidecar is not None:
        sidecar = target.sidecar(spacing_mm, state)
        move_to_history(path.with_suffix(".json"), "replaced with the weights")
        write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    logger.info(f"model {model}: new weights installed by {user.username}" + (f"; previous kept as {previous}" if previous else ""))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"model": model, "checksum": f"SHA256:{digest}", "modified_time": int(path.stat().st_mtime),
            "previous": previous.name if previous else None}
