"""A stand-in for SynthSeg's command line, for tests of everything the project does around SynthSeg.

SynthSeg cannot be installed here (its weights are not on PyPI: facts.md), so this program
speaks mri_synthseg's command line and writes what SynthSeg writes: a FreeSurfer-id label map
on its own 1 mm grid in another orientation, a volumes table and a QC table. The labels are
the subject's known ones (looked up by the input's file name), so tests check finding
SynthSeg, its arguments, its failures, resampling onto the case, id mapping and the tables,
never SynthSeg's own accuracy.
"""

import json
import os
import sys
from pathlib import Path

PROGRAM = '''#!{python}
import argparse, json, os, sys
import itk, numpy as np
parser = argparse.ArgumentParser()
for option in ("--i", "--o", "--vol", "--qc", "--threads"):
    parser.add_argument(option)
for flag in ("--robust", "--cpu", "--parc"):
    parser.add_argument(flag, action="store_true")
args = parser.parse_args()
with open(os.environ["FAKE_SYNTHSEG_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
truth = json.loads(os.environ["FAKE_SYNTHSEG_TRUTH"]).get(os.path.basename(args.i))
if truth is None:
    sys.exit("SynthSeg: cannot segment " + args.i)
print("predicting 1/1", flush=True)
labels = itk.imread(truth, itk.SS)
size = np.array(labels.GetLargestPossibleRegion().GetSize())
indices = np.array(np.meshgrid(*[[0, n - 1] for n in size])).reshape(3, -1).T
corners = np.array(labels.GetOrigin()) + (indices * np.array(labels.GetSpacing())) @ np.array(labels.GetDirection()).T
direction = np.array(labels.GetDirection()) @ np.array([[-1, 0, 0], [0, 0, 1], [0, -1, 0]])  # LIA-like
local = corners @ direction
grid = itk.Image[itk.SS, 3].New()
grid.SetRegions([int(n) for n in np.ceil(local.max(0) - local.min(0)) + 1])
grid.SetSpacing((1.0, 1.0, 1.0))
grid.SetOrigin([float(v) for v in direction @ local.min(0)])
grid.SetDirection(itk.matrix_from_array(direction))
grid.Allocate()
nearest = itk.NearestNeighborInterpolateImageFunction[type(labels), itk.D].New()
itk.imwrite(itk.resample_image_filter(labels, use_reference_image=True, reference_image=grid, interpolator=nearest), args.o)
ids, counts = np.unique(itk.array_from_image(labels), return_counts=True)
voxel_mm3 = float(np.prod(labels.GetSpacing()))
with open(args.vol, "w") as table:  # SynthSeg names its columns by structure; ids are enough here
    table.write("subject," + ",".join(str(i) for i in ids[1:]) + "\\n")
    table.write("case," + ",".join(f"{n * voxel_mm3:.1f}" for n in counts[1:]) + "\\n")
with open(args.qc, "w") as table:
    table.write("subject,general white matter\\ncase,0.9\\n")
'''




def install(folder: Path, truth: dict) -> dict[str, str]:
    """Write ``folder/mri_synthseg``; return the environment that puts it on PATH with ``truth``
    ({input file name: FreeSurfer-id label map}). Its calls are logged to ``folder/calls.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "mri_synthseg"
    program.write_text(PROGRAM.replace("{python}", sys.executable))
    program.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}",
            "FAKE_SYNTHSEG_TRUTH": json.dumps({k: str(v) for k, v in truth.items()}),
            "FAKE_SYNTHSEG_LOG": str(folder / "calls.jsonl")}
