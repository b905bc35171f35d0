"""`openimages-etl`: run the flows from a shell. Exit codes: 0 ok, 1 invalid data, 2 usage or unreadable source,
3 publish failed, 4 a bug."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from openimages_etl.cli_flags import add_options, json_object, parsed_options
from openimages_etl.config import LOCAL_SERVER_STARTUP_S, Limits
from openimages_etl.errors import InvalidDataError, OpenImagesETLError, UsageError
from openimages_etl.options import ExportOptions, SelectionSpec, SourceOptions, ValidateOptions
from openimages_etl.orchestration.heap import bound_the_heap
from openimages_etl.progress import terminal_progress
from openimages_etl.storage.locations import url_stem
from openimages_etl.storage.objects import ARCHIVE_PATTERNS

EXIT_BUG = 4
# Flags renamed when they came to be generated from the option models; the old spellings still work.
OLD_FLAGS = {
    "--source-options": ("--storage-options",),
    "--dest-options": ("--dest-storage-options",),
    "--work": ("--work-dir",),
}
DEMO_OPTIONS = {"image_size", "resize_method"}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(LOCAL_SERVER_STARTUP_S))
    bound_the_heap()  # before Prefect's threads take arenas of their own (the flow does it too, for deployments)
    try:
        return args.run(args)
    except KeyboardInterrupt:  # how the long-running commands (serve, watch, relay) are stopped
        return 130
    except OpenImagesETLError as exc:
        _print_error(exc, args.verbose)
        return exc.exit_code
    except Exception as exc:  # a bug (or Prefect failing): its traceback is what helps
        traceback.print_exception(exc)
        print(
            f"openimages-etl: internal error ({type(exc).__name__}); please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openimages-etl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="build the bundled sample dataset, export it, print where the zip is")
    demo.add_argument(
        "--dir", default="openimages-demo", help="folder for the sample and its export (default: %(default)s)"
    )
    add_options(demo, ExportOptions, DEMO_OPTIONS)
    demo.set_defaults(run=_demo)

    validate = commands.add_parser("validate", help="check SOURCE; print every failing row; write nothing")
    validate.add_argument("source")
    add_options(validate, ValidateOptions, aliases=OLD_FLAGS)
    _add_dask(validate)
    validate.set_defaults(run=_validate)

    export = commands.add_parser("export", help="validate SOURCE and publish DEST/NAME.zip with a run report")
    export.add_argument("source")
    add_options(export, ExportOptions, aliases=OLD_FLAGS)
    _add_dask(export)
    export.set_defaults(run=_export)
    _add_production_commands(commands)

    inspect = commands.add_parser(
        "inspect", help="print SOURCE's layout and counts per subset and class, chart it; export nothing"
    )
    inspect.add_argument("source")
    inspect.add_argument(
        "--charts-dir", default=None, help="folder for the chart PNGs (default: ./<source stem>.inspect)"
    )
    add_options(inspect, SourceOptions, aliases=OLD_FLAGS)
    add_options(inspect, SelectionSpec, group="selection")
    inspect.set_defaults(run=_inspect)
    for command in commands.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", help="print an error's traceback too (bugs always print theirs)"
        )
    return parser


def _add_dask(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the tasks on Dask: a temporary local cluster, or the scheduler at ADDRESS (tcp://host:8786)",
    )


def _add_production_commands(commands: argparse._SubParsersAction) -> None:
    """serve / deploy / watch / relay: the production triggers (README, "Running in production")."""
    patterns = {
        "action": "append",
        "dest": "patterns",
        "metavar": "GLOB",
        "help": f"file-name pattern of archives, repeatable (default: {' '.join(ARCHIVE_PATTERNS)})",
    }
    for name, text, run in (
        ("serve", "run the deployments from this process (no work pool needed)", _serve),
        ("deploy", "register the deployments for a process work pool", _deploy),
    ):
        command = commands.add_parser(
            name,
            help=text,
            description=f"{text}: ad-hoc (adhoc), cron (scheduled) "
            "and event-triggered (on-upload) exports of the archives under SOURCE into DEST",
        )
        command.add_argument("source", help="folder or prefix (local path or fsspec URL) where archives are uploaded")
        add_options(command, ExportOptions, aliases=OLD_FLAGS)  # the exports' options, pre-filled in the deployments
        command.add_argument("--cron", help="schedule of the incremental export, in UTC (default: hourly)")
        command.add_argument("--pattern", **patterns)
        command.add_argument(
            "--concurrency", type=int, help="runs at a time of the adhoc and on-upload deployments (default: 1)"
        )
        command.add_argument(
            "--dask",
            metavar="ADDRESS",
            help="also an adhoc-dask deployment: its tasks on the Dask scheduler at ADDRESS (tcp://host:8786)",
        )
        if name == "deploy":
            command.add_argument(
                "--pool", required=True, help="process work pool (prefect work-pool create NAME --type process)"
            )
        command.set_defaults(run=run)

    watch = commands.add_parser(
        "watch", help="poll a folder or prefix; emit openimages.object.created per new or changed archive"
    )
    watch.add_argument("url", help="folder or prefix: local path, s3://, gs://, ...")
    watch.add_argument("--pattern", **patterns)
    watch.add_argument("--interval", type=float, default=30.0, help="seconds between listings (default: %(default)s)")
    watch.add_argument(
        "--state",
        default=None,
        help="JSON file of the versions already announced (default: one per URL under ~/.cache/openimages-etl/watch/)",
    )
    watch.add_argument(
        "--existing",
        choices=["skip", "announce"],
        default="skip",
        help="what a first watch (no state file yet) does with the archives already there: skip them and "
        "announce only what appears after it starts, or announce each (the ledger still skips the exported "
        "ones) (default: %(default)s)",
    )
    watch.add_argument("--once", action="store_true", help="list once, emit, print what was announced, exit")
    watch.add_argument("--storage-options", type=json_object, default=None, help="JSON fsspec options for URL")
    watch.set_defaults(run=_watch)

    relay = commands.add_parser(
        "relay", help="HTTP endpoint for S3/MinIO bucket notifications; emits openimages.object.created"
    )
    relay.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    relay.add_argument("--port", type=int, default=8787, help="(default: %(default)s)")
    relay.add_argument("--pattern", **patterns)
    relay.set_defaults(run=_relay)


def _run_flow(flow, dask: str | None = None, **parameters) -> Any:
    """Run a flow (Prefect's local mode unless PREFECT_API_URL is set), on Dask if asked; re-raise our own errors.
    Progress bars show on a terminal, drawn on Prefect's console so its log lines print above them."""
    if dask:
        from openimages_etl.flows.scaleout import on_dask

        flow = on_dask(flow, None if dask == "local" else dask)
    with terminal_progress(_prefect_console()):
        state = flow(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result


def _prefect_console():
    from prefect.logging.handlers import PrefectConsoleHandler

    return next((h.console for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)), None)


def _inspect(args: argparse.Namespace) -> int:
    from openimages_etl.orchestration.credentials import storage_options
    from openimages_etl.report.inspection import inspect_source, to_text

    source = parsed_options(args, SourceOptions)
    source.refuse_credentials(args.source)
    charts_dir = Path(args.charts_dir or f"{url_stem(args.source)}.inspect").resolve()
    print(
        to_text(
            inspect_source(
                args.source,
                storage_options(source.source),
                charts_dir,
                Limits.from_env(),
                selection=parsed_options(args, SelectionSpec),
            )
        )
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from openimages_etl.flows import export_open_images

    options = parsed_options(args, ExportOptions)
    options.refuse_credentials(args.source)  # before the run exists: its parameters are stored on the Prefect server
    _print_summary(_run_flow(export_open_images, args.dask, source=args.source, options=options))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from openimages_etl.flows import validate_open_images

    options = parsed_options(args, ValidateOptions)
    options.refuse_credentials(args.source)
    summary = _run_flow(validate_open_images, args.dask, source=args.source, options=options)
    print(f"valid: {summary['source']} — images per subset {summary['images']}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from openimages_etl.flows import export_open_images
    from openimages_etl.format.sample import make_sample, zip_folder

    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = zip_folder(make_sample(Path(tmp) / "sample"), base / "sample-openimages.zip")
    print(f"sample dataset: {archive}")
    options = parsed_options(args, ExportOptions, DEMO_OPTIONS, dest=str(base / "export"))
    report = _run_flow(export_open_images, source=str(archive), options=options)
    _print_summary(report)
    return 0


def _settings(args: argparse.Namespace):
    from openimages_etl.deployments import Settings

    given = {
        "cron": args.cron,
        "concurrency": args.concurrency,
        "patterns": args.patterns and tuple(args.patterns),
        "dask": args.dask,
    }
    return Settings(
        source=args.source,
        options=parsed_options(args, ExportOptions),
        **{key: value for key, value in given.items() if value},
    )


def _stoppable() -> None:
    """Ctrl-C and `kill` stop the long-running commands, also when started in the background: a shell starts a
    background job with SIGINT ignored, and Python keeps it ignored. (serve's runner takes SIGTERM over itself.)"""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _serve(args: argparse.Namespace) -> int:
    from openimages_etl.deployments import serve_deployments

    _stoppable()
    serve_deployments(_settings(args))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from openimages_etl.deployments import deploy_to_pool

    for name in deploy_to_pool(_settings(args), args.pool):
        print(f"deployed {name} to work pool {args.pool}")
    print(f"start a worker: prefect worker start --pool {args.pool}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    from openimages_etl.deployments.emit import require_api, send_events
    from openimages_etl.production.events import OBJECT_CREATED, WatchState, poll_once, take_baseline
    from openimages_etl.storage.locations import display_url
    from openimages_etl.storage.objects import canonical_url

    require_api()
    _stoppable()
    patterns = args.patterns or ARCHIVE_PATTERNS
    state_path = (
        Path(args.state) if args.state else _default_state(canonical_url(args.url, args.storage_options), patterns)
    )
    state, shown = WatchState(state_path), display_url(args.url)
    if state.fresh and args.existing == "skip":
        already = take_baseline(args.url, patterns, state, args.storage_options)
        print(
            f"first watch of {shown}: baseline taken, {len(already)} archive{'' if len(already) == 1 else 's'} "
            "already there not announced (--existing announce would announce them)",
            flush=True,
        )
    every = "once" if args.once else f"every {args.interval:g} s"
    print(f"watching {shown} for {' '.join(patterns)} {every} (state: {state_path})", flush=True)
    while True:
        try:
            announced = poll_once(args.url, patterns, state, send_events, args.storage_options)
            for obj in announced:
                print(f"emitted {OBJECT_CREATED} for {display_url(obj.url)} (version {obj.version})", flush=True)
        except Exception as exc:  # a poller outlives outages of the store or the API: report, retry next time
            if args.once:
                raise
            print(
                f"openimages-etl watch: {type(exc).__name__}: {exc}; retrying in {args.interval:g} s",
                file=sys.stderr,
                flush=True,
            )
        if args.once:
            if not announced:
                print(f"nothing new under {shown}", flush=True)
            return 0
        time.sleep(args.interval)


def _default_state(url: str, patterns) -> Path:
    digest = hashlib.sha256("\n".join([url, *patterns]).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "openimages-etl" / "watch" / f"{digest}.json"


def _relay(args: argparse.Namespace) -> int:
    from openimages_etl.deployments.emit import require_api, send_events
    from openimages_etl.production.relay import RelayServer

    require_api()
    _stoppable()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = os.environ.get("OPENIMAGES_RELAY_TOKEN")
    server = RelayServer(args.host, args.port, send_events, args.patterns or ARCHIVE_PATTERNS, token)
    print(
        f"relay listening on http://{args.host}:{server.server_address[1]}/ "
        f"({'token required' if token else 'no token: keep it on a private network'})",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _print_summary(report: dict[str, Any]) -> None:
    if report.get("note"):
        print(report["note"])
    print(f"{report['status']}: {report['output']}")
    for subset, counts in report["subsets"].items():
        print(f"  {subset}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if report["errors_total"]:
        print(f"  {report['errors_total']} invalid rows left out (see the report)")
    stem = report["output"].rsplit(".zip", 1)[0]
    print(f"report: {stem}.report.md, {stem}.report.html  ({report['duration_s']} s)")


def _print_error(exc: OpenImagesETLError, verbose: bool) -> None:
    if verbose or not exc.expected:
        traceback.print_exception(exc)
    print(f"openimages-etl: {exc}", file=sys.stderr)
    if isinstance(exc, InvalidDataError):
        for failure in exc.failures:
            print(f"  {failure}", file=sys.stderr)
        if exc.total > len(exc.failures):
            print(
                f"  ... and {exc.total - len(exc.failures)} more of the same checks (raise --max-errors to list them)",
                file=sys.stderr,
            )
    elif isinstance(exc, UsageError):
        print("see: openimages-etl --help", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
