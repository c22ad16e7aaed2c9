"""The module's inputs: moving volumes with their modality names, and the channels of the case it sends.

The parameter node keeps two parallel lists (volumes, modality names). A volume deleted from
the scene reads back as None at its index, so the table the user sees (deleted volumes left
out) is not indexed like those lists. :class:`InputsTable` is that table: rows as shown, and
the lists to write back, consistent again. Volumes are opaque here (Slicer nodes in the module,
anything in tests); they are compared by identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from ..errors import InputError
from ..data.modalities import canonical_channel, guess_modality


class InputsTable:
    """Rows (volume, modality) as the table shows them; deleted volumes (None) are left out."""

    def __init__(self, volumes: Sequence[Any], modalities: Sequence[str]) -> None:
        modalities = list(modalities) + [""] * max(0, len(volumes) - len(modalities))
        self.rows: list[tuple[Any, str]] = [(v, str(m)) for v, m in zip(volumes, modalities) if v is not None]

    @property
    def volumes(self) -> list[Any]:
        return [volume for volume, _modality in self.rows]

    @property
    def modalities(self) -> list[str]:
        return [modality for _volume, modality in self.rows]

    def add(self, volume: Any, name: str, reference: Any = None, reference_modality: str = "") -> str:
        """Add ``volume`` (node name ``name``) with a modality guessed from its name, unique in the case."""
        if volume is None:
            raise InputError("moving volume", "select a volume to add")
        if volume is reference:
            raise InputError(name, "is the reference volume; choose another volume to add")
        if any(volume is v for v in self.volumes):
            raise InputError(name, "is already in the list")
        taken = {canonical_channel(m) for m in [reference_modality, *self.modalities] if m}
        modality = guess_modality(name) or f"channel{len(self.rows) + 1}"
        base, number = modality, 2
        while modality in taken:
            modality, number = f"{base}_{number}", number + 1
        self.rows.append((volume, modality))
        return modality

    def remove(self, rows: Iterable[int]) -> None:
        """Remove the rows at these table positions (out-of-range positions are ignored)."""
        drop = set(rows)
        self.rows = [row for index, row in enumerate(self.rows) if index not in drop]

    def rename(self, row: int, modality: str) -> None:
        """Set the modality of the row at table position ``row`` (checked when the case is registered or sent)."""
        volume, _old = self.rows[row]
        self.rows[row] = (volume, modality.strip())


def case_channels(reference: Any, reference_modality: str, table: InputsTable,
                  registered_of: Callable[[Any], Any]) -> tuple[list[Any], list[str], list[str]]:
    """(volumes, channel names, modalities left out) of the case to send.

    Every moving volume is paired with its own registration result, ``registered_of(volume)``
    (None when it has none): a volume added or re-ordered after the last registration is never
    sent under another volume's name; it is left out (and named) until it is registered.
    """
    if reference is None:
        raise InputError("reference volume", "select a reference volume first")
    volumes, names, missing = [reference], [reference_modality], []
    for volume, modality in table.rows:
        registered = registered_of(volume)
        if registered is None:
            missing.append(modality)
        else:
            volumes.append(registered)
            names.append(modality)
    return volumes, names, missing


# The parameter node's inputs (movingVolumes, movingModalities, referenceVolume, referenceModality) as plain
# attributes: the module passes its typed parameter node and slicer.util.NodeModify as ``batch`` (one Modified
# event for both lists), tests pass any object with those attributes.

def edit_inputs(parameters: Any, edit: Callable[[InputsTable], Any], batch: Callable[[Any], Any] | None = None) -> Any:
    """Apply ``edit(table)`` to the inputs and write both lists back together (deleted volumes dropped)."""
    table = InputsTable(list(parameters.movingVolumes), list(parameters.movingModalities))
    result = edit(table)
    with batch(parameters) if batch else nullcontext():
        parameters.movingVolumes, parameters.movingModalities = table.volumes, table.modalities
    return result


def use_case(parameters: Any, volumes: Mapping[str, Any], batch: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Make a case's volumes (channel name -> volume, reference first) the inputs; returns them."""
    names = list(volumes)
    with batch(parameters) if batch else nullcontext():
        parameters.referenceVolume, parameters.referenceModality = volumes[names[0]], names[0]
        parameters.movingVolumes, parameters.movingModalities = [volumes[n] for n in names[1:]], names[1:]
    return dict(volumes)


def guess_reference_modality(parameters: Any, name: str) -> None:
    """Set the reference modality from the reference volume's name when the name says one."""
    guess = guess_modality(name)
    if guess and guess != parameters.referenceModality:
        parameters.referenceModality = guess


def inputs_of(parameters: Any) -> InputsTable:
    """The inputs table of the parameter node's two lists."""
    return InputsTable(list(parameters.movingVolumes), list(parameters.movingModalities))
