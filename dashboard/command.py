"""``telemetry dashboard``: the command the dashboard adds to the ``telemetry`` CLI.

It is registered as an entry point of the group ``llm_telemetry.commands`` (pyproject.toml), which loader.cli
reads: the loader never imports the dashboard, the dashboard imports the loader.
"""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction, epilog: str) -> None:
    """Add ``dashboard`` to the CLI's commands; ``epilog`` is the CLI's own (settings and exit codes)."""
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the web dashboard (read-only, as telemetry_reader)",
        description="Serve a web dashboard of the marts: spend over time, by model, phase and task type, errors, "
        "sessions and the call log, each page also as ?format=json and ?format=csv. Reads as telemetry_reader "
        "in read-only transactions. Runs until Ctrl-C or SIGTERM.",
        epilog="examples:\n  telemetry dashboard\n  telemetry dashboard --port 9000 --open\n\n"
        "environment:\n  TELEMETRY_DASHBOARD_DATABASE_URL  a login of its own (member of telemetry_reader); "
        "wins over TELEMETRY_DATABASE_URL\n  TELEMETRY_MONTHLY_BUDGET_USD  shows a budget bar on the overview\n\n"
        + epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787; 0 = any free)")
    dashboard.add_argument("--open", action="store_true", help="open the dashboard in a web browser")
    dashboard.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dashboard.server import serve  # Starlette and uvicorn load only when the dashboard is asked for

    return serve(args.host, args.port, open_browser=args.open)
