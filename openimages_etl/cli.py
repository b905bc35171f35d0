"""`openimages-etl`: run the flows from a shell. Exit codes: 0 ok, 1 invalid data, 2 usage or unreadable source, 3 publish failed."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from .config import ImageSize, OnInvalid
from .errors import InvalidDataError, OpenImagesETLError, UsageError
from .storage import refuse_credentials

EXIT_BUG = 4


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        return args.run(args)
    except OpenImagesETLError as exc:
        _print_error(exc)
        return exc.exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openimages-etl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="build the bundled sample dataset, export it, print where the zip is")
    demo.add_argument("--dir", default="openimages-demo", help="folder for the sample and its export (default: %(default)s)")
    demo.add_argument("--image-size", choices=[s.value for s in ImageSize], default="original")
    demo.set_defaults(run=_demo)

    validate = commands.add_parser("validate", help="check SOURCE; print every failing row; write nothing")
    validate.add_argument("source")
    validate.add_argument("--storage-options", type=_json, default=None, help="JSON fsspec options for SOURCE (no credentials)")
    validate.add_argument("--source-block", help="Prefect block with SOURCE's credentials: secret/NAME or aws-credentials/NAME")
    validate.set_defaults(run=_validate)

    export = commands.add_parser("export", help="validate SOURCE and publish DEST/NAME.zip with a run report")
    export.add_argument("source")
    export.add_argument("dest")
    export.add_argument("--name")
    export.add_argument("--image-size", choices=[s.value for s in ImageSize], default="original")
    export.add_argument("--subsets", type=lambda v: [s for s in v.split(",") if s], default=None, help="e.g. train,validation")
    export.add_argument("--per-subset", action="store_true", help="also write DEST/NAME-<subset>.zip")
    export.add_argument("--on-invalid", choices=[o.value for o in OnInvalid], default="fail")
    export.add_argument("--storage-options", type=_json, default=None, help="JSON fsspec options for SOURCE (no credentials)")
    export.add_argument("--dest-storage-options", type=_json, default=None, help="JSON fsspec options for DEST (no credentials)")
    export.add_argument("--source-block", help="Prefect block with SOURCE's credentials: secret/NAME or aws-credentials/NAME")
    export.add_argument("--dest-block", help="Prefect block with DEST's credentials: secret/NAME or aws-credentials/NAME")
    export.add_argument("--work-dir", default=None, help="scratch folder (default: the system's temp dir)")
    export.set_defaults(run=_export)
    return parser


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _run_flow(flow, **parameters) -> Any:
    """Run a flow (Prefect's local mode unless PREFECT_API_URL is set) and re-raise our own errors."""
    state = flow(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, OpenImagesETLError):
        raise result
    if isinstance(result, BaseException):
        traceback.print_exception(result)
        print(f"openimages-etl: internal error ({type(result).__name__}); please report it with the traceback above", file=sys.stderr)
        raise SystemExit(EXIT_BUG)
    return result


def _export(args: argparse.Namespace) -> int:
    from openimages_etl.flows import export_open_images

    # Refused before the run exists: its parameters are stored on the Prefect server.
    refuse_credentials(args.source, args.storage_options, "source")
    refuse_credentials(args.dest, args.dest_storage_options, "destination")
    report = _run_flow(export_open_images, source=args.source, dest=args.dest, name=args.name, image_size=ImageSize(args.image_size),
                       subsets=args.subsets, per_subset=args.per_subset, on_invalid=OnInvalid(args.on_invalid),
                       source_options=args.storage_options, dest_options=args.dest_storage_options,
                       source_block=args.source_block, dest_block=args.dest_block, work_dir=args.work_dir)
    _print_summary(report)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from openimages_etl.flows import validate_open_images

    refuse_credentials(args.source, args.storage_options, "source")
    summary = _run_flow(validate_open_images, source=args.source, source_options=args.storage_options, source_block=args.source_block)
    print(f"valid: {summary['source']} — images per subset {summary['images']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from openimages_etl.flows import export_open_images
    from openimages_etl.sample import make_sample, zip_folder

    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = zip_folder(make_sample(Path(tmp) / "sample"), base / "sample-openimages.zip")
    print(f"sample dataset: {archive}")
    report = _run_flow(export_open_images, source=str(archive), dest=str(base / "export"), image_size=ImageSize(args.image_size))
    _print_summary(report)
    return 0


def _print_summary(report: dict[str, Any]) -> None:
    if report.get("note"):
        print(report["note"])
    print(f"{report['status']}: {report['output']}")
    for subset, counts in report["subsets"].items():
        print(f"  {subset}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if report["errors_total"]:
        print(f"  {report['errors_total']} invalid rows left out (see the report)")
    print(f"report: {report['output'].rsplit('.zip', 1)[0]}.report.md  ({report['duration_s']} s)")


def _print_error(exc: OpenImagesETLError) -> None:
    print(f"openimages-etl: {exc}", file=sys.stderr)
    if isinstance(exc, InvalidDataError):
        for failure in exc.failures:
            print(f"  {failure}", file=sys.stderr)
        if exc.total > len(exc.failures):
            print(f"  ... and {exc.total - len(exc.failures)} more (first rows of each check shown; see the report)", file=sys.stderr)
    elif isinstance(exc, UsageError):
        print("see: openimages-etl --help", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
