"""What the notebooks share: where things are, and a few plain-matplotlib pictures.

Imported first by every notebook (whose working directory is this folder). It puts the
checkout's core, ``ElastixMonaiLabel/ElastixMonaiLabelLib``, first on the import path of the
kernel and of the processes it starts (the environments also have it installed), says where
each notebook writes (``$NOTEBOOK_OUTPUT``, else ``notebook-output/`` in the checkout, which git
ignores) and where the user's real scans are (``$ELASTIXMONAILABEL_REAL_DATA``; the sections that
need them are skipped without it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "ElastixMonaiLabel") not in sys.path:
    sys.path.insert(0, str(ROOT / "ElastixMonaiLabel"))
# Processes the notebooks start (the command line, Dask workers, the server) import the same core.
if str(ROOT / "ElastixMonaiLabel") not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "ElastixMonaiLabel"), os.environ.get("PYTHONPATH")]))
# Real scans: a folder the user names (scripts/run_notebooks.py --real-data DIR sets the variable); none by default.
REAL_DATA = Path(os.environ["ELASTIXMONAILABEL_REAL_DATA"]).resolve() if os.environ.get("ELASTIXMONAILABEL_REAL_DATA") else None

from ElastixMonaiLabelLib.workflows.figures import canonical_array  # noqa: E402
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES  # noqa: E402


def work_folder(name: str) -> Path:
    """An empty-or-reused folder for one notebook's files."""
    folder = Path(os.environ.get("NOTEBOOK_OUTPUT") or ROOT / "notebook-output").resolve() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def real_data(*parts: str) -> Path | None:
    """A path under the real scans folder, or None (with the reason printed) when it is not there."""
    if REAL_DATA is None:
        print("skipped: no real scans given (set ELASTIXMONAILABEL_REAL_DATA to their folder, or run the notebooks"
              " with scripts/run_notebooks.py --real-data DIR).")
        return None
    path = REAL_DATA.joinpath(*parts)
    if path.exists():
        return path
    print(f"skipped: {path} is not here. Real scans are not part of the project (their licences differ);"
          " see the section's text for where to get such data.")
    return None


# -- pictures ----------------------------------------------------------------------------------

def scaled(array: np.ndarray) -> np.ndarray:
    """0..1 between the 1st and 99.5th percentiles: comparable grey levels whatever the contrast."""
    lo, hi = np.percentile(array, [1, 99.5])
    return np.clip((np.asarray(array, dtype=np.float32) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def planes(image, at=(0.5, 0.5, 0.5)) -> list[tuple[str, np.ndarray, float]]:
    """(view, plane, aspect) for the axial, coronal and sagittal planes through fractions ``at`` of
    the extent (superior, posterior, left), radiological: the patient's right on the left."""
    volume, (s, p, left) = canonical_array(image)
    k, j, i = (min(n - 1, int(f * n)) for f, n in zip(at, volume.shape))
    return [("axial", volume[k], p / left), ("coronal", volume[:, j][::-1], s / left),
            ("sagittal", volume[:, :, i][::-1], s / p)]


LABEL_COLOURS = np.zeros((256, 3))
for _structure in SYNTHSEG_STRUCTURES:
    LABEL_COLOURS[_structure.value] = np.array(_structure.color) / 255.0


def coloured(grey: np.ndarray, labels: np.ndarray | None, opacity: float = 0.6) -> np.ndarray:
    """RGB of a grey plane with label values 1..32 painted in FreeSurfer's colours."""
    rgb = scaled(grey)[..., None].repeat(3, axis=-1)
    if labels is None:
        return rgb
    values = np.asarray(labels).astype(int)
    return np.clip(np.where(values[..., None] > 0, (1 - opacity) * rgb + opacity * LABEL_COLOURS[values], rgb), 0, 1)


def show_planes(rows: dict, labels: dict | None = None, title: str = "", at=(0.5, 0.5, 0.5), size: float = 2.6):
    """One row of three planes per image (``rows``: name -> ITK image); ``labels``: name -> label image
    (values 1..32) drawn over the row of that name."""
    import matplotlib.pyplot as plt

    labels = labels or {}
    fig, axes = plt.subplots(len(rows), 3, figsize=(3 * size, size * len(rows)), squeeze=False)
    for row, (name, image) in enumerate(rows.items()):
        label_planes = planes(labels[name], at) if name in labels else [None] * 3
        for ax, (view, plane, aspect), label_plane in zip(axes[row], planes(image, at), label_planes):
            ax.imshow(coloured(plane, None if label_plane is None else label_plane[1]), aspect=aspect,
                      interpolation="nearest")
            ax.set_title(f"{name} ({view})", fontsize=9)
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def structure_legend(values) -> None:
    """A legend of the structures whose values are given (FreeSurfer names and colours)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    present = {int(v) for v in np.unique(values)}
    handles = [Patch(color=np.array(s.color) / 255.0, label=f"{s.value} {s.name}") for s in SYNTHSEG_STRUCTURES
               if s.value in present]
    fig, ax = plt.subplots(figsize=(9, 0.22 * (len(handles) + 2) / 3 + 0.2))
    ax.legend(handles=handles, loc="center", ncol=3, fontsize=8, frameon=False)
    ax.axis("off")
    plt.show()


def dice_table(dice: dict[int, float], columns: int = 2):
    """Dice per structure (value -> score) as a Markdown table, worst first."""
    from IPython.display import Markdown

    names = {s.value: s.name for s in SYNTHSEG_STRUCTURES}
    items = sorted(dice.items(), key=lambda item: item[1])
    rows = (len(items) + columns - 1) // columns
    lines = ["| " + " | ".join(["structure | Dice"] * columns) + " |", "|" + "---|---|" * columns]
    for r in range(rows):
        cells = [items[r + c * rows] for c in range(columns) if r + c * rows < len(items)]
        lines.append("| " + " | ".join(f"{names.get(v, v)} | {d:.2f}" for v, d in cells) + " |")
    return Markdown("\n".join(lines))


def browse(images: dict, labels=None):
    """An axial slice slider over images on one grid (name -> ITK image), labels optionally drawn over
    each: a widget in Jupyter (a batch run draws into it once; a rendered copy cannot show it)."""
    import ipywidgets
    import matplotlib.pyplot as plt

    volumes = {name: canonical_array(image)[0] for name, image in images.items()}
    label_volume = canonical_array(labels)[0] if labels is not None else None
    first = next(iter(images.values()))
    _, (_, p, left) = canonical_array(first)
    depth = next(iter(volumes.values())).shape[0]

    def draw(axial_slice: int) -> None:
        fig, axes = plt.subplots(1, len(volumes), figsize=(3.2 * len(volumes), 3.4), squeeze=False)
        for ax, (name, volume) in zip(axes[0], volumes.items()):
            overlay = None if label_volume is None else label_volume[axial_slice]
            ax.imshow(coloured(volume[axial_slice], overlay), aspect=p / left, interpolation="nearest")
            ax.set_title(f"{name}, axial slice {axial_slice}", fontsize=9)
            ax.axis("off")
        plt.show()

    ipywidgets.interact(draw, axial_slice=ipywidgets.IntSlider(value=depth // 2, min=0, max=depth - 1))


def ras_planes(volume, at=(0.5, 0.5, 0.5)) -> list[tuple[str, np.ndarray]]:
    """(view, plane) for the axial, coronal and sagittal planes of an array in RAS voxel order (MONAI's
    ``Orientationd("RAS")``, isotropic), through fractions ``at`` of its extent (x, y, z), radiological."""
    volume = np.asarray(volume)
    x, y, z = (min(n - 1, int(f * n)) for f, n in zip(at, volume.shape))
    return [(view, plane.T[::-1, ::-1]) for view, plane in
            (("axial", volume[:, :, z]), ("coronal", volume[:, y, :]), ("sagittal", volume[x]))]
