"""Active-learning strategies beyond MONAI Label's ``random``."""

from __future__ import annotations

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy


class First(Strategy):
    """The first unlabeled image in name order: predictable, handy for working through a list."""

    def __init__(self) -> None:
        super().__init__("First unlabeled image, in name order")

    def __call__(self, request, datastore: Datastore):
        images = sorted(datastore.get_unlabeled_images())
        return {"id": images[0]} if images else None
