"""The app's rules for an infer request (MONAI Label's ``infer``, called by POST /infer/{model}).

- The image is a datastore id, or the one file the endpoint itself received (an upload or a
  session's file, lib.http.routes.TRUSTED_INPUT); any other path is refused.
- ``save_label`` writes the result into the datastore under ``label_tag`` (default
  'original'), never as the final (reviewed) label; never for a file sent with the request.
- ``preset`` must name a registration preset.
- A model that fails because of its input answers with the reason (4xx, lib.http.guard);
  any other failure is a ModelFailed (500) naming the model, logged with its traceback.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException

from ElastixMonaiLabelLib.data.datastore_names import check_image_id, check_label_tag
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.registration.presets import list_presets

from ..http.errors import BadRequest, Forbidden, InvalidRequest, ModelFailed, NotFound
from ..http.guard import status_and_message
from ..http.params import yes_no

logger = logging.getLogger(__name__)


def input_image(image: Any, datastore, trusted_input: str | None) -> tuple[Any, bool]:
    """What the task reads for the request's ``image``, and whether a label may be saved for it."""
    if isinstance(image, str) and image and image == trusted_input:
        return image, False  # a file sent with the request is not in the datastore
    if isinstance(image, str):
        try:
            check_image_id(image)
        except InputError as error:
            raise BadRequest(f"{error} (infer reads datastore images by id, or a file sent with the request)") from error
        if image not in datastore.list_images():
            raise NotFound(f"image {image!r} is not in the datastore")
        return datastore.get_image_uri(image), True
    if image is None:
        raise InvalidRequest("no image given")
    return image, False  # an image in memory (MONAI Label's internal callers)


def check_label_destination(tag: Any) -> None:
    """A label tag a model may write: valid, and not 'final'."""
    try:
        check_label_tag(tag)
    except InputError as error:
        raise BadRequest(str(error)) from error
    if tag == "final":
        raise Forbidden("a model never writes the final (reviewed) label: save_label takes another label_tag (default "
                        "'original'); save reviewed labels with PUT /datastore/label")


def check_preset(preset: Any) -> None:
    names = [p.name for p in list_presets()]
    if preset not in names:
        raise InvalidRequest(f"unknown preset {str(preset)[:80]!r}: infer takes a preset name ({', '.join(names)})")


def run_task(task, model: str, image: Any, request: dict) -> tuple[str | None, dict]:
    """The task's result; a failure that is not the input's becomes a ModelFailed naming the model."""
    try:
        return task(request)
    except HTTPException:
        raise  # the app's own errors (lib.http.errors) carry their status and message
    except Exception as error:
        if status_and_message(error)[0] < 500:
            raise  # the input's fault (InputError...): lib.http.guard answers it with its 4xx and reason
        logger.error(f"model {model} failed on {image!r}", exc_info=error)
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise ModelFailed(f"model {model} failed on this image: {type(error).__name__}: {first} "
                          "(see the server log)") from error


def run_infer(infers: Mapping[str, Any], request: Mapping[str, Any], datastore, trusted_input: str | None) -> dict:
    """Check ``request`` (see the module docstring), run its model, save the label if asked; MONAI Label's
    result: the label (its datastore id, or the result file), its tag, the file and the params."""
    model = request.get("model")
    task = infers.get(model)
    if task is None:
        raise NotFound(f"unknown model {model!r}; available: {', '.join(infers)}")
    request = copy.deepcopy(dict(request))
    request["description"] = task.description
    image = request.get("image")
    save_label = yes_no(request.get("save_label"), "save_label")
    tag = request.get("label_tag", "original")
    request["image"], savable = input_image(image, datastore, trusted_input)
    save_label = save_label and savable
    if save_label:
        check_label_destination(tag)
    if "preset" in request:
        check_preset(request["preset"])
    request["save_label"] = save_label
    result_file, result_json = run_task(task, model, image, request)
    label_id = None
    if result_file and os.path.exists(result_file):
        label_id = datastore.save_label(image, result_file, tag, {"model": model, "params": result_json}) \
            if save_label else result_file
    return {"label": label_id, "tag": tag if save_label else "original", "file": result_file, "params": result_json}
