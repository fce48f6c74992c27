"""The ``telemetry`` command: a thin layer that parses arguments, calls the library and prints.

Exit codes (loader.errors): 0 done (rejected rows are warnings), 1 an internal failure, 2 a user error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path

from loader.errors import EXIT_INTERRUPTED, EXIT_OK, TelemetryError

EPILOG = """\
environment:
  TELEMETRY_DATABASE_URL  postgresql:// URL of a PostgreSQL >= 15; unset = embedded server
  TELEMETRY_PGDATA        data folder of the embedded server (default .telemetry/pgdata)
  TELEMETRY_CSV_PATH      CSV read when no PATH is given (default .telemetry/usage.csv)
  TELEMETRY_RETENTION_MONTHS  retention window of a new database (default 6); then: telemetry retention set

exit codes: 0 done (rejected rows are warnings), 1 bug, 2 user error (bad file, header or configuration)
"""


#: Commands other packages add to ``telemetry`` (``telemetry dashboard``, from dashboard.command): entry points of
#: this group, each a function that takes the subcommands and EPILOG and adds its own. The loader imports none.
COMMAND_GROUP = "llm_telemetry.commands"

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]}


def _terminal(text: str) -> str:
    """Text as it may reach a terminal: control characters (escape sequences) from the data shown as \\xNN."""
    return text.translate(_CONTROL)


def _out(text: str = "") -> None:
    print(_terminal(text), flush=True)


_STDERR = threading.Lock()  # dbt reports its nodes from its worker threads: one line at a time, whole


def _err(message: str) -> None:
    with _STDERR:
        sys.stderr.write(_terminal(message) + "\n")
        sys.stderr.flush()


def _progress_printer(enabled: bool):
    def progress(message: str) -> None:
        if enabled:
            _err(message)

    return progress


def _print_summary(summary, as_json: bool) -> None:
    from loader.checkpoints import READ_DESCRIPTIONS
    from loader.ingest import IngestSummary

    assert isinstance(summary, IngestSummary)
    for load in summary.loads:
        for reject in load.rejects:
            lines = ", ".join(map(str, reject.first_lines))
            more = ", ..." if reject.count > len(reject.first_lines) else ""
            _err(
                f"warning: {load.source_file}: {reject.count} row{'s' if reject.count != 1 else ''} "
                f"rejected: {reject.reason} (line{'s' if reject.count != 1 else ''} {lines}{more})"
                + ("" if summary.dry_run else f"; see telemetry.rejected_rows where load_id = {load.load_id}")
            )
        if load.conflicts:
            lines = ", ".join(map(str, load.conflict_lines)) + (", ..." if load.conflicts > len(load.conflict_lines)
                                                                 else "")
            _err(
                f"warning: {load.source_file}: {load.conflicts} row{'s' if load.conflicts != 1 else ''} not inserted: "
                f"same (timestamp, session_id, prompt_name) as a call already stored but other values "
                f"(line{'s' if load.conflicts != 1 else ''} {lines}); counted as duplicates"
                + ("" if summary.dry_run else f"; both versions are in telemetry.call_conflicts where load_id = "
                   f"{load.load_id}")
            )
        if load.pending:
            _err(f"warning: {load.pending}")
    for notice in summary.notices:
        _err(f"warning: {notice}")
    if as_json:
        print(json.dumps(summary.as_dict()))
        return
    for load in summary.loads:
        what = READ_DESCRIPTIONS.get(load.read, "read in full")
        _out(f"{'dry run: ' if summary.dry_run else ''}{load.source_file}: {what}")
    verbs = (
        ("would insert", "would skip as duplicates", "  of which conflicts", "would reject",
         "would expire (not loaded)")
        if summary.dry_run
        else ("inserted", "duplicates skipped", "  of which conflicts", "rejected", "expired (not loaded)")
    )
    rows = [("rows read", summary.total("rows_read")), *zip(verbs, (
        summary.total("inserted"), summary.total("duplicates"), summary.total("conflicts"), summary.total("rejected"),
        summary.total("expired")
    ), strict=True)]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>9,}")
    print(f"  {'elapsed':<{width}}  {summary.elapsed_seconds:>8.1f}s")
    pruned = summary.pruned
    if pruned and pruned.anything:
        verb = "would prune" if summary.dry_run else "pruned"
        print(f"  {verb} {pruned.calls:,} calls and {pruned.rejected_rows:,} rejected rows older than "
              f"{pruned.cutoff:%Y-%m-%d %H:%M} UTC (retention)")
    if summary.dry_run:
        print("  nothing was written (dry run)")


def cmd_ingest_csv(args: argparse.Namespace) -> int:
    from loader.config import Settings
    from loader.ingest import ingest_csv

    if args.path is not None and not args.path.strip():
        raise TelemetryError("the PATH argument is empty; pass a CSV file, a directory or a glob, or leave it out "
                             "to read $TELEMETRY_CSV_PATH (default .telemetry/usage.csv)")
    settings = Settings.from_env()
    if settings.engine == "spark":
        from loader.spark_ingest import ingest_csv_spark

        for flag, given in (("--watch", args.watch), ("--dry-run", args.dry_run)):
            if given:
                raise TelemetryError(f"{flag} is not available with TELEMETRY_ENGINE=spark (see README, "
                                     "\"Running on Spark\"); run without it")
        summary = ingest_csv_spark(Path(args.path) if args.path is not None else None, settings,
                                   progress=_progress_printer(not args.quiet))
        _print_summary(summary, args.json)
        return EXIT_OK
    if args.watch:
        return _watch_csv(args)
    summary = ingest_csv(
        Path(args.path) if args.path is not None else None,
        dry_run=args.dry_run,
        progress=_progress_printer(not args.quiet),
    )
    _print_summary(summary, args.json)
    return EXIT_OK


def _watch_csv(args: argparse.Namespace) -> int:
    """``ingest csv --watch``: the first SIGINT or SIGTERM stops the watch once the load in progress is done (exit 0);
    a second SIGINT interrupts that load (it is undone, nothing is lost: exit 130)."""
    import signal

    from loader.watch import watch_csv

    if args.dry_run:
        raise TelemetryError("--watch loads as the file grows and --dry-run writes nothing; use one of them")
    stopping = threading.Event()

    def stop(signum, frame) -> None:
        if stopping.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopping.set()

    def report(summary) -> None:
        _print_summary(summary, args.json)
        sys.stdout.flush()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        progress = _progress_printer(not args.quiet)
        progress("watching for new records; Ctrl-C stops")
        watch_csv(Path(args.path) if args.path is not None else None, progress=progress, report=report,
                  on_error=lambda exc: _err(f"error: {exc.message}; still watching"), stop=stopping.is_set)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    progress("stopped watching")
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from loader.retention import prune

    result = prune(months=args.months, dry_run=args.dry_run, progress=_progress_printer(not args.json))
    if result.notice:
        _err(f"warning: {result.notice}")
    if args.json:
        print(json.dumps(result.as_dict()))
    elif result.cutoff is None:
        print("retention is off (0 months): nothing to prune")
    else:
        verb = "would delete" if args.dry_run else "deleted"
        print(f"{verb} what is older than {result.cutoff:%Y-%m-%d %H:%M} UTC:")
        print(f"  calls in telemetry.llm_calls         {result.calls:>10,}")
        print(f"  rows in telemetry.rejected_rows      {result.rejected_rows:>10,}")
        if args.dry_run:
            print("  nothing was deleted (dry run)")
    return EXIT_OK


def _months(text: str) -> int:
    from loader.config import parse_retention_months

    try:
        return parse_retention_months(text, "MONTHS")
    except TelemetryError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def cmd_retention_set(args: argparse.Namespace) -> int:
    from loader.retention import set_retention

    retention = set_retention(args.months)
    if args.json:
        print(json.dumps(retention.as_dict()))
    elif retention.cutoff is None:
        _out("this database now keeps every call (retention off); nothing will be pruned")
    else:
        _out(f"this database now keeps {retention.months} months of calls: the next ingest or prune deletes "
             f"what is older than {retention.cutoff:%Y-%m-%d} 00:00 UTC (see first: telemetry prune --dry-run)")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    from loader.status import database_status

    status = database_status()
    if args.json:
        print(json.dumps(status, default=_jsonable))
        return EXIT_OK
    retention = status["retention"]
    window = "not set yet (the first ingest sets it)" if retention["months"] is None else (
        "off: every call is kept" if retention["months"] == 0 else
        f"{retention['months']} months: calls before {retention['cutoff'][:10]} 00:00 UTC are pruned")
    rows = [
        ("database", status["database"]),
        ("server", status["server_version"]),
        ("retention", window),
        ("calls", f"{status['calls']:,}" if status["calls"] is not None else "none loaded yet"),
        ("loads", f"{status['loads']:,}"),
        ("last load", status["last_load"] or "never"),
        ("size", f"{status['size_bytes'] / 2**20:,.1f} MiB"),
    ]
    for label, value in rows:
        _out(f"{label:<10} {value}")
    if retention.get("notice"):
        _err(f"warning: {retention['notice']}")
    return EXIT_OK


def cmd_db_url(args: argparse.Namespace) -> int:
    from loader.config import Settings
    from loader.connection import mask_url
    from loader.database import resolve_url

    url = resolve_url(Settings.from_env())
    print(url if args.show_password else mask_url(url))
    return EXIT_OK


def cmd_db_stop(args: argparse.Namespace) -> int:
    from loader.config import Settings
    from loader.embedded import stop_embedded

    settings = Settings.from_env()
    if settings.database_url:
        _err("TELEMETRY_DATABASE_URL is set: that server is not ours to stop; nothing done")
        return EXIT_OK
    stopped = stop_embedded(settings.pgdata)
    _out(f"stopped the embedded PostgreSQL in {settings.pgdata}" if stopped
          else f"no embedded PostgreSQL runs in {settings.pgdata}")
    return EXIT_OK


def _jsonable(value):
    from datetime import date, datetime
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def cmd_stats(args: argparse.Namespace) -> int:
    from loader.config import Settings
    from loader.connection import connect
    from loader.database import resolve_url
    from loader.stats import collect_stats, render_stats

    settings = Settings.from_env()
    if settings.engine == "spark":
        from loader.spark_session import locked_warehouse
        from loader.spark_stats import collect_stats_spark

        with locked_warehouse(settings, _progress_printer(not args.json)) as spark:
            stats = collect_stats_spark(spark, since=args.since, until=args.until, phase=args.phase,
                                        model=args.model)
    else:
        with connect(resolve_url(settings)) as conn:
            stats = collect_stats(conn, since=args.since, until=args.until, phase=args.phase, model=args.model)
    if args.json:
        print(json.dumps(stats, default=_jsonable))
    else:
        _out(render_stats(stats))
    return EXIT_OK


def cmd_prices_update(args: argparse.Namespace) -> int:
    from loader.prices import DEFAULT_SEED_PATH, write_seed

    count = write_seed(DEFAULT_SEED_PATH)
    print(f"wrote {count:,} price rows to {DEFAULT_SEED_PATH}")
    print("new loads use these prices; to reprice the calls already stored run: telemetry prices reprice")
    return EXIT_OK


def cmd_prices_reprice(args: argparse.Namespace) -> int:
    from loader.prices import reprice

    reprice(progress=_progress_printer(True))
    print("repriced every stored call with seeds/model_prices.csv and rebuilt the marts")
    return EXIT_OK


def _date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-24") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telemetry",
        description="Load coding-agent LLM usage CSVs into PostgreSQL and report what they cost.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="load data into the database")
    ingest_kinds = ingest.add_subparsers(dest="kind", required=True, metavar="KIND")
    csv_parser = ingest_kinds.add_parser(
        "csv",
        help="load a usage CSV, deduplicate it into telemetry.llm_calls and rebuild the marts",
        description=(
            "Load a usage CSV into telemetry_raw.usage_rows, deduplicate it into telemetry.llm_calls on "
            "(timestamp, session_id, prompt_name) and rebuild the marts. Running it again on the same file "
            "inserts nothing. Rows that cannot be typed are kept in telemetry.rejected_rows with a reason."
        ),
        epilog="examples:\n  telemetry ingest csv\n  telemetry ingest csv logs/usage.csv --dry-run\n"
        "  telemetry ingest csv '.telemetry/*.csv' --json\n  telemetry ingest csv --watch     # live: one summary "
        "per load (--json: one object a line)\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    csv_parser.add_argument(
        "path", nargs="?", metavar="PATH",
        help="CSV file, directory of .csv files, or glob (default: $TELEMETRY_CSV_PATH, else .telemetry/usage.csv)",
    )
    csv_parser.add_argument("--dry-run", action="store_true", help="count what would happen; write nothing")
    csv_parser.add_argument(
        "--watch", action="store_true",
        help="stay running: load new complete records as the writer appends them, until Ctrl-C or SIGTERM")
    csv_parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    csv_parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    csv_parser.set_defaults(func=cmd_ingest_csv)

    stats = commands.add_parser(
        "stats",
        help="what was spent, on which model and phase, how often it worked",
        description="Totals, a by-model and a by-phase table, the daily cost of the last days, the top errors, "
        "and a warning naming models without a price. Reads the marts; days are UTC.",
        epilog="examples:\n  telemetry stats\n  telemetry stats --since 2026-11-01 --model gpt-4o\n"
        "  telemetry stats --phase 2.1 --json\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stats.add_argument("--since", type=_date, metavar="DATE", help="first UTC day to count (YYYY-MM-DD)")
    stats.add_argument("--until", type=_date, metavar="DATE", help="last UTC day to count (YYYY-MM-DD)")
    stats.add_argument("--phase", metavar="P", help="only this phase ('(none)' = calls without one)")
    stats.add_argument("--model", metavar="M", help="only this model (as written in the CSV)")
    stats.add_argument("--json", action="store_true", help="print everything as one JSON object")
    stats.set_defaults(func=cmd_stats)

    prune = commands.add_parser(
        "prune",
        help="delete calls older than the retention window, from the marts too",
        description="Delete calls older than the database's retention window (or N months, for this run only) "
        "from telemetry.llm_calls, the marts, the landing table and the rejects. The cutoff is midnight UTC, N "
        "calendar months ago. Every ingest does the same pruning when the cutoff moved.",
        epilog="examples:\n  telemetry prune --dry-run\n  telemetry prune --months 12\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument("--months", type=_months, metavar="N",
                       help="retention window in months, for this run only (default: the database's window, "
                       "see telemetry db status)")
    prune.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    prune.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    prune.set_defaults(func=cmd_prune)

    prices = commands.add_parser("prices", help="the price table behind estimated_cost_usd")
    price_commands = prices.add_subparsers(dest="prices_command", required=True, metavar="ACTION")
    update = price_commands.add_parser(
        "update", help="regenerate seeds/model_prices.csv from the installed genai-prices package")
    update.set_defaults(func=cmd_prices_update)
    reprice = price_commands.add_parser(
        "reprice", help="recompute estimated_cost_usd of every stored call with the current price seed")
    reprice.set_defaults(func=cmd_prices_reprice)

    retention = commands.add_parser(
        "retention", help="the retention window, a setting of the database",
        description="The retention window is stored in the database: the first command on a database stores "
        "TELEMETRY_RETENTION_MONTHS (default 6); afterwards only this command changes it, and an environment "
        "variable that disagrees is reported, not used. `telemetry db status` shows it.",
        epilog="examples:\n  telemetry retention set 0     # keep everything\n  telemetry retention set 12\n\n"
        + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    retention_commands = retention.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    retention_set = retention_commands.add_parser(
        "set", help="store a new window (months; 0 keeps everything); the next ingest or prune applies it")
    retention_set.add_argument("months", type=_months, metavar="MONTHS")
    retention_set.add_argument("--json", action="store_true", help="print the new window as one JSON object")
    retention_set.set_defaults(func=cmd_retention_set)

    db = commands.add_parser("db", help="the database: its status and URL, stopping the embedded server")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    status = db_commands.add_parser(
        "status", help="which database, its retention window, how many calls and loads, its size",
        description="Show the database the commands use (embedded or TELEMETRY_DATABASE_URL, password masked), "
        "the server version, the retention window stored in the database, the number of calls and loads, the "
        "last load and the database's size. Starts the embedded server when needed; changes nothing.")
    status.add_argument("--json", action="store_true", help="print the status as one JSON object")
    status.set_defaults(func=cmd_db_status)
    url = db_commands.add_parser("url", help="print a URL for psql and dashboards (starts the embedded server)")
    url.add_argument("--show-password", action="store_true", help="print the password instead of ****")
    url.set_defaults(func=cmd_db_url)
    stop = db_commands.add_parser("stop", help="stop the embedded PostgreSQL server")
    stop.set_defaults(func=cmd_db_stop)

    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(commands, EPILOG)
    return parser


def _check_engine(args: argparse.Namespace, argv: list[str]) -> None:
    """On Spark only ingest csv, stats and prices update work; the others say so in one line."""
    if os.environ.get("TELEMETRY_ENGINE", "").strip().lower() != "spark":
        return
    if args.func not in (cmd_ingest_csv, cmd_stats, cmd_prices_update):
        name = " ".join(a for a in argv[:2] if not a.startswith("-")) or "this command"
        raise TelemetryError(f"`telemetry {name}` works on PostgreSQL only, not with TELEMETRY_ENGINE=spark (see "
                             "README, \"Running on Spark\"); unset TELEMETRY_ENGINE to use it")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_engine(args, sys.argv[1:] if argv is None else argv)
        return args.func(args)
    except TelemetryError as exc:  # the user's to fix (exit 2) or ours to fix (exit 1): one line either way
        _err(f"error: {exc.message}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `telemetry stats | head`: the reader left, which is not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
