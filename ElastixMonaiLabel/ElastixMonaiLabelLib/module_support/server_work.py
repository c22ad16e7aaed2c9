"""The Slicer module's exchanges with a MONAI Label server, as functions a ``jobs.ThreadJob`` runs.

Each takes volumes as voxels.VoxelVolume (copied from nodes on the GUI thread) and does the
file writing, the upload, the waiting and the reading on the worker thread, so that Slicer's
GUI thread only turns arrays into nodes. Files follow the multimodal contract (multimodal.py)
and are written with numpy alone (nifti.py): Slicer's Python has no nibabel.

The module remembers which datastore image its inputs are (the image id, and the
:func:`case_fingerprint` of the channels it fetched or sent), so that segmenting a fetched case
unchanged runs the model on that image instead of uploading a copy: its label then lands on the
case the active-learning strategy offered, and the datastore does not fill with duplicates.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..client.rest import MonaiLabelClient, ServerError
from ..errors import InputError
from ..data.images import grid_mismatch
from ..data.modalities import canonical_channel
from ..data.multimodal import case_id, read_case_volumes, write_case_volumes
from ..runtime.processes import CancelToken
from ..data.voxels import VoxelVolume


def segmentation_models(info: Mapping[str, Any]) -> list[str]:
    """Names of the models in a GET /info/ answer that segment (not the other kinds)."""
    return [name for name, model in info.get("models", {}).items() if model.get("type", "segmentation") == "segmentation"]


def describe_model(model: Mapping[str, Any]) -> str:
    """One line about a model of GET /info/: its description, the channels it reads, whether it is trained."""
    channels = model.get("channels", {})
    needs = (f"needs channels {', '.join(channels['all_of'])}" if "all_of" in channels else
             f"reads one of {', '.join(channels['any_of'])}" if "any_of" in channels else "reads one volume")
    return f"{model.get('description', '')} - {needs}" + ("" if model.get("trained", True) else " (not trained yet)")


def case_fingerprint(channels: Mapping[str, VoxelVolume]) -> str:
    """What identifies a case's content (JSON, kept with its image id in the parameter node): per channel, in order,
    its canonical name, a digest of its voxels as float32 (as the module copies them out of nodes) and its grid."""
    return json.dumps([[canonical_channel(name), hashlib.sha256(np.ascontiguousarray(volume.array, np.float32)).hexdigest(),
                        list(np.shape(volume.array)), np.asarray(volume.ijk_to_ras).tolist()]
                       for name, volume in channels.items()])


def _fingerprint_channels(fingerprint: str) -> list[tuple[str, str, VoxelVolume]]:
    """(name, voxel digest, grid as an empty VoxelVolume) per channel; [] for an empty or unreadable fingerprint."""
    try:
        return [(str(name), str(digest), VoxelVolume(np.broadcast_to(np.float32(0), tuple(shape)), matrix))
                for name, digest, shape, matrix in json.loads(fingerprint)]
    except (TypeError, ValueError):  # an empty string, a scene saved before fingerprints: not a known case
        return []


def same_case(fingerprint: str, other: str) -> bool:
    """Whether two fingerprints are the same channels, in the same order, with the same voxels on the same grids.
    Grids are compared by images.grid_mismatch: a matrix that went through a node's IJK-to-RAS comes back rounded."""
    first, second = _fingerprint_channels(fingerprint), _fingerprint_channels(other)
    return bool(first) and len(first) == len(second) and all(
        a[:2] == b[:2] and grid_mismatch(a[2], b[2]) is None for a, b in zip(first, second))


def segmentation_work(client: MonaiLabelClient, model: str, name: str, channels: Mapping[str, VoxelVolume],
                      temporary: str | Path, report: Callable[..., None], cancel: CancelToken,
                      on_server: tuple[str, str] = ("", "")) -> tuple[str, VoxelVolume, dict, str]:
    """Run ``model`` on the case; return (image id, label map on the reference grid, result params, case fingerprint).

    The case is written and uploaded, unless ``on_server`` = (image id, fingerprint) is a case the server has
    (fetched from it, or sent before) and ``channels`` are that case unchanged: then the model runs on that image
    and nothing is uploaded (if the image has left the datastore since, the case is uploaded after all). Files live
    in a folder under ``temporary`` that is gone when this returns."""
    fingerprint = case_fingerprint(channels)
    image_id, known = on_server
    reuse = bool(image_id and same_case(known, fingerprint))
    with tempfile.TemporaryDirectory(prefix="ElastixMonaiLabel-segmentation-", dir=temporary) as folder:
        if not reuse:
            image_id = _upload_case(client, name, channels, Path(folder), report, cancel)
        cancel.raise_if_cancelled()
        report(None, f"waiting for {model} on {image_id}")
        try:
            result = client.infer(model, image_id, Path(folder) / "label.nii.gz")
        except ServerError as error:
            if not (reuse and error.status == 404 and image_id not in client.datastore().get("objects", {})):
                raise
            image_id = _upload_case(client, name, channels, Path(folder), report, cancel)
            result = client.infer(model, image_id, Path(folder) / "label.nii.gz")
        label = VoxelVolume.read(result.label_path)
    reference = next(iter(channels.values()))
    problem = grid_mismatch(label, reference)
    if problem:
        raise ServerError(f"the server's label map is not on the reference grid ({problem})")
    return image_id, VoxelVolume(np.asarray(label.array).astype(np.uint8), reference.ijk_to_ras), result.params, fingerprint


def _upload_case(client: MonaiLabelClient, name: str, channels: Mapping[str, VoxelVolume], folder: Path,
                 report: Callable[..., None], cancel: CancelToken) -> str:
    """Write the case (multimodal contract) in ``folder`` and upload it under its content id; returns the id."""
    report(None, "writing the case")
    case_path = write_case_volumes(channels, folder / "case.nii.gz")
    image_id = case_id(name, case_path)
    cancel.raise_if_cancelled()
    report(None, f"uploading {image_id}")
    client.upload_image(case_path, image_id)
    return image_id


def submit_work(client: MonaiLabelClient, image_id: str, label: VoxelVolume, temporary: str | Path,
                fingerprint: str = "") -> str:
    """Save an edited label map on the server as ``image_id``'s final label (file in a folder under ``temporary``);
    returns ``image_id``. With the case's ``fingerprint``, a label off the case's reference grid (the reference
    volume was moved, or put under another transform, after segmenting) is refused here, saying so."""
    if not np.any(label.array):
        raise InputError("segmentation", "is empty: nothing to send")
    case = _fingerprint_channels(fingerprint)
    problem = grid_mismatch(label, case[0][2]) if case else None
    if problem:
        raise InputError("segmentation", f"is not on the grid {image_id} has on the server ({problem}): the reference "
                                         "volume was moved or put under another transform since; put it back or segment again")
    with tempfile.TemporaryDirectory(prefix="ElastixMonaiLabel-submit-", dir=temporary) as folder:
        client.save_label(image_id, label.write(Path(folder) / "label.nii.gz", dtype=np.uint8), tag="final")
    return image_id


def next_sample_work(client: MonaiLabelClient, strategy: str, temporary: str | Path) -> tuple[str, dict[str, VoxelVolume], str]:
    """The case the strategy picks next, downloaded: (image id, {channel name: volume} in file order, case fingerprint)."""
    sample = client.next_sample(strategy)
    if not sample or not sample.get("id"):
        raise ServerError(f"the server has no unlabelled case left for strategy {strategy}")
    with tempfile.TemporaryDirectory(prefix="ElastixMonaiLabel-next-", dir=temporary) as folder:
        channels = read_case_volumes(client.download_image(sample["id"], Path(folder) / "case.nii.gz"))
    return sample["id"], channels, case_fingerprint(channels)


def trainer_for(info: Mapping[str, Any], model: str) -> str:
    """The model to train: ``model`` when the server can train it, else the server's first trainer."""
    trainers = list(info.get("trainers", {}))
    if not trainers:
        raise ServerError("this server has no trainable model")
    return model if model in trainers else trainers[0]


class TrainingRun:
    """One training on the server, followed until it ends, as jobs on a jobs.JobBoard (the GUI polls the board).

    :meth:`start` posts the training; each answer (start, status, stop) goes through :meth:`update`, and while the
    server says the training is queued or running, the status is asked again after :attr:`POLL_S` seconds
    (JobBoard.later: no thread sleeps meanwhile). ``on_update(fraction or None, message)`` hears every answer.
    """

    POLL_S = 3.0
    ACTIVE = ("SUBMITTED", "QUEUED", "RUNNING")

    def __init__(self, client: MonaiLabelClient, model: str, epochs: int) -> None:
        self.client, self.model, self.epochs = client, model, int(epochs)
        self.running = False
        self._board: Any = None
        self._on_update: Callable[[float | None, str], Any] = lambda fraction, message: None

    def _job(self, call: Callable[[], Any], name: str):
        from ..runtime.jobs import ThreadJob

        return ThreadJob(lambda report, cancel: call(), name)

    def start(self, board: Any, on_update: Callable[[float | None, str], Any]) -> None:
        self._board, self._on_update, self.running = board, on_update, True
        board.start("training", self._job(lambda: self.client.train_start(self.model, {"max_epochs": self.epochs}), "train"),
                    self._answered)

    def stop(self) -> None:
        """Ask the server to stop; the status is followed until it says the training ended."""
        self._board.cancel("training")
        self._board.start("stop training", self._job(self.client.train_stop, "train-stop"), self._answered)

    def update(self, job: Any) -> tuple[float | None, str]:
        """(fraction done or None, message) from a finished start/status/stop job; sets :attr:`running`."""
        from ..client.rest import training_progress

        if job.error:
            self.running = False
            return None, f"training: {job.error}"
        status = job.result if isinstance(job.result, dict) and "status" in job.result else {"status": "SUBMITTED"}
        self.running = str(status.get("status", "")).upper() in self.ACTIVE
        return training_progress(status, self.epochs)

    def _answered(self, job: Any) -> None:
        fraction, message = self.update(job)
        if self.running:
            self._board.later("training", self.POLL_S, lambda: self._job(self.client.train_status, "train-status"), self._answered)
        self._on_update(fraction, message)
