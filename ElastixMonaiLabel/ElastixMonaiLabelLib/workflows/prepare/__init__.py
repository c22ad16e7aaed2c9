"""The ``prepare`` command: a folder of cases in a known layout -> a MONAI Label datastore.

Each case's modalities are co-registered to the reference modality (elastix, core presets)
and written as one 4D case file (the multimodal contract, :mod:`...data.multimodal`) named
after the case; label files found beside them (SynthSeg outputs, FreeSurfer-id label maps) are
resampled onto the reference grid, mapped to the label table's values 1..32 and stored as the
case's final label (``labels/final/<case>.nii.gz``, MONAI Label's local datastore layout).

Resumable: a case is done when its marker ``.prepare/<case>.json`` exists, written last; an
interrupted case is simply prepared again, and nothing half-written carries a final name. The
summary (``prepare_summary.json``) lists cases done, skipped and failed with the reason.

:mod:`.layouts` finds the cases, :mod:`.case` prepares one, :mod:`.runners` runs them in
parallel (processes, Dask), :mod:`.dataset` is the loop over a dataset.
"""

from .case import prepare_case
from .dataset import prepare_dataset
from .layouts import CO_REGISTERED_LAYOUTS, DEFAULT_CHANNELS, LAYOUTS, Case, find_cases
from .runners import local_cluster

__all__ = ["CO_REGISTERED_LAYOUTS", "DEFAULT_CHANNELS", "LAYOUTS", "Case", "find_cases", "local_cluster", "prepare_case",
           "prepare_dataset"]
