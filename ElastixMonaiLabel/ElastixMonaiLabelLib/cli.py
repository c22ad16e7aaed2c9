"""Command line: ``elastix-monailabel <command> --help`` explains every option."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .segmentation.atlases import DEFAULT_ATLASES
from .workflows.demo import DEMO_SEED
from .errors import CancelledError, ElastixMonaiLabelError
from .runtime.jobs import format_event
from .runtime.processes import CancelToken


def _clamped(fraction: float) -> float:
    return min(max(fraction, 0.0), 1.0)


def _progress_bar(description: str):
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def update(fraction: float | None, message: str = "") -> None:  # a runtime.progress.ProgressCallback
        if fraction is not None:
            bar.n = round(100 * _clamped(fraction))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    return bar, update


class _EventStream:
    """Stands in for a progress bar under ``--events``: progress as JSON event lines (see jobs.py)."""

    def __init__(self, description: str) -> None:
        self.description = description

    def update(self, fraction: float | None, message: str = "") -> None:  # a runtime.progress.ProgressCallback
        print(format_event("progress", fraction=None if fraction is None else round(_clamped(fraction), 4),
                           message=message or self.description), flush=True)

    @staticmethod
    def write(line: str) -> None:
        print(line, flush=True)

    def close(self) -> None:
        pass


def _progress(args: argparse.Namespace, description: str):
    """(bar, update): a tqdm bar for people, JSON events for the Slicer module (``--events``)."""
    if getattr(args, "events", False):
        stream = _EventStream(description)
        return stream, stream.update
    return _progress_bar(description)


def _whole(minimum: int):
    """argparse type: a whole number >= ``minimum`` (threads, workers, atlases, subjects: 1; seeds: 0)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    return parse


_count = _whole(1)
_seed = _whole(0)


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number, 1-65535, not {value}")
    return value


def _number(minimum: float, inclusive: bool):
    """argparse type: a finite number above ``minimum`` (or equal to it when ``inclusive``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {minimum:g}, not {text}")
        return value

    return parse


_positive = _number(0.0, inclusive=False)
_non_negative = _number(0.0, inclusive=True)


def _default_preset() -> str:
    """The default preset's name, for the help texts (presets.json says which it is)."""
    from .registration.presets import default_preset

    return default_preset().name


def _add_sample_data(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sample-data",
        help="generate multimodal sample subjects from the shipped SynthSeg label maps",
        description="Synthesise T1-, T2- and FLAIR-like volumes from SynthSeg label maps, each moving "
        "modality misaligned by a known random rigid transform. Writes per subject: t1.nii.gz, t2.nii.gz, "
        "flair.nii.gz, labels.nii.gz (FreeSurfer ids on the T1 grid), brain_mask.nii.gz, truth/*.tfm and "
        "subject.json (seed, transforms, spacing).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed; the same seed gives the same subject (default 0)")
    parser.add_argument("--spacing", type=_positive, default=1.0, help="voxel size in mm, e.g. 1, 2 or 3 (default 1)")
    parser.add_argument("--subjects", type=_count, default=1, help="number of subjects, seeds SEED, SEED+1, ... (default 1)")
    parser.add_argument("--thick-flair", type=_positive, default=None, metavar="MM",
                        help="give the FLAIR thick axial slices of MM mm (e.g. 5); default: same spacing as the others")
    parser.add_argument("--max-rotation", type=_non_negative, default=10.0, metavar="DEG", help="largest misalignment rotation (default 10)")
    parser.add_argument("--max-translation", type=_non_negative, default=10.0, metavar="MM", help="largest misalignment shift (default 10)")
    parser.add_argument("--label-map", type=Path, default=None,
                        help="a whole-head label map with FreeSurfer ids (default: one of the shipped SynthSeg maps, by seed)")
    parser.set_defaults(run=_run_sample_data)


def _run_sample_data(args: argparse.Namespace, cancel: CancelToken) -> int:
    from tqdm import tqdm

    from .synthetic.sample_data import SubjectSpec, generate_subject

    if args.spacing <= 0 or args.subjects < 1:
        raise ElastixMonaiLabelError("--spacing must be > 0 and --subjects >= 1")
    folders = []
    for offset in tqdm(range(args.subjects), desc="subjects", unit="subject", disable=args.subjects == 1):
        cancel.raise_if_cancelled()
        seed = args.seed + offset
        folder = args.out if args.subjects == 1 else args.out / f"sub-{seed:03d}"
        spec = SubjectSpec(
            seed=seed, spacing_mm=args.spacing, label_map=str(args.label_map) if args.label_map else None,
            thick_slice_mm={"flair": args.thick_flair} if args.thick_flair else None,
            max_rotation_deg=args.max_rotation, max_translation_mm=args.max_translation,
        )
        generate_subject(spec, folder)
        folders.append(folder)
    for folder in folders:
        print(f"subject written to {folder}")
    return 0


def _add_register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "register",
        help="co-register moving modalities onto a reference volume with elastix",
        description="Register each moving volume onto the fixed (reference) volume. Writes per moving volume NAME "
        "(its file name without extension): NAME_registered.nii.gz (on the reference grid), "
        "NAME_to_REF.tfm (linear presets) or NAME_to_REF.h5 (deformable; ITK transform, reference LPS points -> "
        "moving points; Slicer, SimpleITK and ITK read it) and NAME_registration.json (report: preset, engine, "
        "times, similarity before/after).",
    )
    parser.add_argument("--fixed", required=True, type=Path, help="reference volume (e.g. the T1)")
    parser.add_argument("--moving", required=True, type=Path, nargs="+", help="one or more volumes to align to the reference")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--preset", default=None,
                        help=f"preset name (see 'elastix-monailabel presets'; default {_default_preset()}) or elastix parameter "
                        "file(s), comma-separated")
    parser.add_argument("--engine", choices=("itk", "executable"), default="itk",
                        help="itk: itk-elastix in this process (default); executable: the elastix program "
                        "(from $ELASTIX_EXECUTABLE or PATH) in a subprocess")
    parser.add_argument("--fixed-mask", type=Path, default=None, help="mask on the reference grid: only voxels inside count")
    parser.add_argument("--moving-mask", type=Path, nargs="+", default=None, help="one mask per moving volume, on its grid")
    parser.add_argument("--threads", type=_count, default=None, help="elastix threads, 1 or more (default: all cores)")
    parser.add_argument("--verbose", action="store_true", help="print elastix's log")
    parser.set_defaults(run=_run_register)


def _run_register(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .workflows.register import register_files

    bar, update = _progress(args, "registering")
    try:
        written = register_files(
            args.fixed, args.moving, args.out, preset=args.preset, engine=args.engine,
            reference_mask_path=args.fixed_mask, moving_mask_paths=args.moving_mask, threads=args.threads,
            log=(lambda line: bar.write(line)) if args.verbose else None, progress=update, cancel=cancel,
        )
        update(1.0, "done")
    finally:
        bar.close()
    status = 0
    for paths in written:
        report = json.loads(paths["report"].read_text())
        if args.events:
            print(format_event("result", modality=report["modality"], files={k: str(v) for k, v in paths.items()},
                               report=report), flush=True)
        print(
            f"{report['modality']}: NMI {report['metric_before']:.3f} -> {report['metric_after']:.3f} "
            f"in {report['time_total_s']:.1f} s -> {paths['volume']}, {paths['transform']}"
        )
        if not report["metric_improved"]:
            print(f"warning: {report['modality']}: similarity went down; the registration has probably failed. "
                  "Check the overlay, try without masks or with another preset.", file=sys.stderr)
            status = 3
    return status


def _add_prepare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prepare",
        help="co-register a dataset's cases into a MONAI Label datastore",
        description="Find each case's modalities in SRC, co-register them to the reference modality and write one "
        "4D case file per case (channels-last, channel names in the header) into the datastore; label files "
        "matching --labels (FreeSurfer ids, e.g. SynthSeg outputs) go to labels/final mapped to values 1..32. "
        "Resumable: finished cases are skipped. Writes prepare_summary.json (done, skipped, failed with reasons).",
    )
    parser.add_argument("source", type=Path, metavar="SRC", help="dataset folder")
    parser.add_argument("--out", required=True, type=Path, help="datastore folder (created if needed)")
    parser.add_argument("--layout", choices=("brats2021", "brats2023", "oasis3", "generic"), default="generic",
                        help="folder layout (default generic: one subfolder per case, files named by modality)")
    parser.add_argument("--reference", default="t1", help="modality the others are registered to (default t1)")
    parser.add_argument("--channels", default=None,
                        help="comma-separated channel order of the datastore (default: the layout's, e.g. t1,t1ce,t2,flair for BraTS); "
                        "a case missing one fails with the reason")
    parser.add_argument("--labels", default="none", metavar="none|registration|synthseg|FILE_PATTERN",
                        help="none (default); registration: label each case by elastix registration of atlases (stored "
                        "as the 'original' label); synthseg: run SynthSeg (mri_synthseg on PATH, or --synthseg-checkout) "
                        "on each reference image, keeping its volumes/QC CSVs in DATASTORE/synthseg; or label files to "
                        "import, as a glob pattern in each case's folder (e.g. '*_synthseg.nii.gz'). SynthSeg and "
                        "imported labels are stored as the 'final' label")
    parser.add_argument("--atlases", type=_count, default=DEFAULT_ATLASES,
                        help=f"atlases for --labels registration (default {DEFAULT_ATLASES})")
    parser.add_argument("--synthseg-checkout", type=Path, default=None, metavar="DIR",
                        help="for --labels synthseg: a SynthSeg checkout with its weights in DIR/models, run instead of "
                        "mri_synthseg (default: $ELASTIXMONAILABEL_SYNTHSEG)")
    parser.add_argument("--synthseg-python", default=None, metavar="PYTHON",
                        help="the Python (with TensorFlow) that runs the SynthSeg checkout (default: this one)")
    parser.add_argument("--workers", type=_count, default=1, help="cases prepared in parallel (default 1)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS|local",
                        help="run the cases on a Dask cluster (scheduler address, e.g. tcp://10.0.0.5:8786, or 'local' for "
                        "a local cluster of --workers processes); its workers must see SRC and --out at the same paths")
    parser.add_argument("--preset", default=None, help=f"registration preset (default {_default_preset()})")
    parser.add_argument("--engine", choices=("itk", "executable"), default="itk", help="elastix engine (default itk)")
    parser.add_argument("--register", action="store_true",
                        help="co-register the modalities of BraTS layouts too (default: BraTS cases, which come co-registered "
                        "on one grid, are kept as they are after checking that their modalities share it; other layouts are "
                        "always co-registered)")
    parser.set_defaults(run=_run_prepare)


def _run_prepare(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .workflows.prepare import prepare_dataset
    from .segmentation.synthseg_tool import find_synthseg

    # Checked once, before any work: a missing SynthSeg is the user's setup, not a case's failure.
    synthseg = find_synthseg(args.synthseg_checkout, args.synthseg_python) if args.labels == "synthseg" else None
    created = not args.out.exists()
    bar, update = _progress(args, "preparing")
    try:
        summary = prepare_dataset(
            args.source, args.out, layout=args.layout, reference=args.reference,
            channels=args.channels.split(",") if args.channels else None,
            label_pattern=None if args.labels in ("none", "registration", "synthseg") else args.labels,
            atlas_labels=args.atlases if args.labels == "registration" else 0, synthseg=synthseg, workers=args.workers,
            scheduler=args.scheduler, preset=args.preset,
            engine=args.engine, register=True if args.register else None,
            progress=update, cancel=cancel,
        )
    except BaseException:
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # e.g. an unreachable Dask scheduler: a failed command leaves no empty --out behind
        raise
    finally:
        bar.close()
    print(f"modalities {summary['registration']}")
    print(f"done {len(summary['done'])}, skipped {len(summary['skipped'])} (already prepared), failed {len(summary['failed'])}"
          + (f", cancelled {len(summary['cancelled'])} (a rerun prepares them)" if summary["cancelled"] else ""))
    for case, reason in summary["failed"].items():
        print(f"  failed {case}: {reason}", file=sys.stderr)
    print(f"summary: {args.out / 'prepare_summary.json'}")
    if cancel.cancelled:
        print("cancelled by the user", file=sys.stderr)
        return 130
    return 4 if summary["failed"] else 0


def _add_segment(commands: argparse._SubParsersAction) -> None:
    from .workflows.segment import MODELS

    parser = commands.add_parser(
        "segment",
        help="segment your own scans: co-register them, then a MONAI Label model -> labels, picture, volumes, QC",
        description="Co-register the MOVING volumes onto REFERENCE with elastix, send the co-registered stack (one "
        "multimodal case) to a MONAI Label server running this project's app, and write into --out: labels.nii.gz "
        "(SynthSeg's 32 structures, values 1..32, on the reference grid; labels.csv names them), segmentation.png, "
        "volumes.csv (mm^3 per structure and total intracranial volume, as SynthSeg's --vol), qc.json (registration "
        "similarity, what the model reported, warnings) and registered/ (co-registered volumes, transforms, reports). "
        "Without --server a local server is started on 127.0.0.1 and stopped at the end; nothing leaves this machine.",
    )
    parser.add_argument("reference", type=Path, metavar="REFERENCE", help="the volume that fixes the grid (normally the T1)")
    parser.add_argument("moving", type=Path, nargs="*", metavar="MOVING",
                        help="other modalities of the same session (T2, FLAIR, T1ce...), co-registered onto REFERENCE")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--channels", default=None,
                        help="modality of each volume, reference first, comma-separated (e.g. t1,t2,flair); default: "
                        "guessed from the file names (sub-01_T1w, ..._t2, AX_FLAIR...)")
    parser.add_argument("--model", choices=MODELS, default="atlas_registration",
                        help="atlas_registration (default; no training needed): elastix registration of labelled atlases; "
                        "segmentation: the network trained on a datastore's labels (use with --datastore or --server); "
                        "synthseg: the contrast-agnostic network (needs its weights); mri_synthseg: FreeSurfer's SynthSeg "
                        "on the server's PATH")
    parser.add_argument("--server", default=None, metavar="URL",
                        help="a running server with this project's app (e.g. http://127.0.0.1:8000); the case is uploaded "
                        "to it (its token from $ELASTIXMONAILABEL_TOKEN). Default: start a local one on 127.0.0.1")
    parser.add_argument("--datastore", type=Path, default=None, metavar="DIR",
                        help="for the local server: serve this datastore (e.g. one whose segmentation model you trained; "
                        "the case is added to it). Default: a temporary one, removed at the end")
    parser.add_argument("--atlases", type=_count, default=DEFAULT_ATLASES,
                        help=f"atlases of the local server's atlas_registration model (default {DEFAULT_ATLASES})")
    parser.add_argument("--preset", default=None, help=f"co-registration preset (default {_default_preset()})")
    parser.add_argument("--engine", choices=("itk", "executable"), default="itk", help="elastix engine (default itk)")
    parser.add_argument("--threads", type=_count, default=None, help="elastix threads for co-registration (default: all cores)")
    parser.set_defaults(run=_run_segment)


def _run_segment(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .workflows.segment import segment_scans

    bar, update = _progress(args, "segmenting")
    try:
        summary = segment_scans(
            args.reference, args.moving, args.out, channels=args.channels.split(",") if args.channels else None,
            model=args.model, server=args.server, datastore=args.datastore, atlases=args.atlases, preset=args.preset,
            engine=args.engine, threads=args.threads, progress=update, cancel=cancel, log=bar.write,
        )
    finally:
        bar.close()
    for name, report in summary["registration"].items():
        print(f"{name}: NMI {report['metric_before']:.3f} -> {report['metric_after']:.3f} in {report['time_total_s']:.1f} s")
    print(f"total intracranial volume {summary['total_intracranial_ml']:.0f} ml")
    for warning in summary["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"results in {args.out.resolve()}: labels.nii.gz, segmentation.png, volumes.csv, qc.json")
    return 0


def _add_serve(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="run this project's MONAI Label server on a datastore (127.0.0.1 by default) until Ctrl-C",
        description="Start MONAI Label with this project's app (in its own environment, .venv-server) serving DATASTORE, "
        "and print its log until Ctrl-C. The server's working files (MONAI Label's logs, model and bin folders) go to "
        "DATASTORE/.server, trained models to DATASTORE/.models, built atlases to the user's cache "
        "($ELASTIXMONAILABEL_CACHE, else ~/.cache/elastix-monailabel).",
    )
    parser.add_argument("datastore", type=Path, metavar="DATASTORE", help="folder of cases (e.g. made by 'prepare'; created if needed)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only). 0.0.0.0 exposes the server to the "
                        "network: then name the machine with --conf allowed_hosts NAME and set a token (see docs/security.md)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    parser.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="app setting, repeatable, e.g. --conf atlases 12 --conf max_epochs 50 (see docs/server.md)")
    parser.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .client.local_server import LocalServer

    server = LocalServer(args.datastore, host=args.host, port=args.port, conf=dict(args.conf))
    try:
        server.start(cancel)
        print(f"serving {server.studies} at {server.url} (Ctrl-C stops it)", flush=True)
        code = server.follow(cancel)
    finally:
        server.stop()
    if cancel.cancelled:
        print("server stopped")
        return 0
    return code


def _add_server_app(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "server-app",
        help="print the folder of this project's MONAI Label app (for 'monailabel start_server --app')",
        description="Print the folder of this project's MONAI Label app, from a checkout or an installed package. "
        "With DATASTORE, print instead a stand-in app folder under DATASTORE/.server/app that runs the real app: MONAI "
        "Label writes its logs, model and bin folders into the app folder it is given, and this keeps them with the "
        "datastore. Example: monailabel start_server --app \"$(elastix-monailabel server-app DS)\" --studies DS "
        "--host 127.0.0.1",
    )
    parser.add_argument("datastore", type=Path, nargs="?", metavar="DATASTORE",
                        help="the datastore the server will serve (created if needed)")
    parser.set_defaults(run=_run_server_app)


def _run_server_app(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .client.local_server import default_app, runtime_app_dir
    from .runtime.files import ensure_output_dir

    if args.datastore is None:
        print(default_app())
    else:
        datastore = ensure_output_dir(args.datastore).resolve()
        print(runtime_app_dir(datastore))
    return 0


def _add_presets(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("presets", help="list the registration presets", description="List the shipped presets.")
    parser.set_defaults(run=_run_presets)


def _run_presets(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .registration.presets import list_presets

    for preset in list_presets():
        print(f"{preset.name}{' (default)' if preset.is_default else ''}: {preset.title}")
        print(f"    {preset.description}")
        print(f"    files: {', '.join(str(p) for p in preset.stage_files)}")
    return 0


def _add_demo(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="sample data -> co-registration -> local MONAI Label server -> segmentation, all in one folder",
        description="Generate a multimodal sample subject (thick-slice FLAIR included), co-register T2 and FLAIR to "
        "the T1, send the co-registered stack to a local MONAI Label server (started and stopped by the demo, "
        "127.0.0.1) and write the registered volumes, transforms, reports, overlay.png, segmentation.nii.gz and "
        "segmentation.png into --out.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default ./demo-output)")
    parser.add_argument("--seed", type=_seed, default=DEMO_SEED,
                        help=f"sample subject seed (default {DEMO_SEED}: a label map no atlas is made from)")
    parser.add_argument("--spacing", type=_positive, default=1.0, help="voxel size of the sample subject in mm (default 1)")
    parser.add_argument("--no-segmentation", action="store_true", help="stop after co-registration (no server needed)")
    parser.add_argument("--atlases", type=_count, default=DEFAULT_ATLASES,
                        help=f"atlases the server's atlas_registration model uses (default {DEFAULT_ATLASES})")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace, cancel: CancelToken) -> int:
    from .workflows.demo import run_demo

    run_demo(args.out, seed=args.seed, spacing_mm=args.spacing, segment=not args.no_segmentation, atlases=args.atlases,
             cancel=cancel, progress_bar=lambda description: _progress(args, description))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastix-monailabel",
        description="Co-register multimodal brain MRI with elastix and prepare it for MONAI Label.",
    )
    parser.add_argument("--events", action="store_true",
                        help="report progress, results and errors as JSON lines prefixed '@elastix-monailabel ' "
                        "instead of progress bars (for programs driving this one, e.g. the Slicer module)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sample_data(commands)
    _add_register(commands)
    _add_prepare(commands)
    _add_segment(commands)
    _add_serve(commands)
    _add_server_app(commands)
    _add_presets(commands)
    _add_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cancel = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):  # first Ctrl-C cancels cleanly, a second one aborts
        cancel.cancel()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_interrupt)
    started = time.perf_counter()
    try:
        return args.run(args, cancel)
    except CancelledError as error:
        print(f"cancelled: {error}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # a second Ctrl-C while the first one's cancel was being honoured
        print("interrupted", file=sys.stderr)
        return 130
    except ElastixMonaiLabelError as error:
        if args.events:
            print(format_event("error", message=str(error)), flush=True)
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
        if args.command not in ("presets", "server-app"):
            print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
