"""`axon-dagster …`: entry points that only wire. Run `axon-dagster --help`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from axon_dagster.settings.tools import CliSettings


def _database_url(args) -> str:
    return args.database_url or CliSettings.load().database_url


def cmd_api(args) -> int:
    from axon_dagster.api.server import serve

    serve(host=args.host, port=args.port, database_url=_database_url(args), admin_token=CliSettings.load().admin_token, workers=args.workers)
    return 0


def cmd_db_upgrade(args) -> int:
    from axon_dagster.control_plane.persistence import upgrade

    url = _database_url(args)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    print(f"database at {url.split('@')[-1]} is at the latest schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="axon-dagster", description="Robot data-collection orchestration.")
    parser.add_argument("--log-level", default=CliSettings.load().log_level)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    api = sub.add_parser("api", help="serve the control-plane API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--database-url")
    api.add_argument(
        "--workers", type=int, default=None, help="uvicorn worker processes (default: AXON_API_WORKERS, else one per CPU, at most 4)"
    )
    api.set_defaults(func=cmd_api)

    db = sub.add_parser("db", help="control-plane database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("--database-url")
    upgrade.set_defaults(func=cmd_db_upgrade)
    return parser


# Subcommands with their own parser live beside their room; `axon-dagster X ...` hands over the rest.
DELEGATED = {
    "demo": ("axon_dagster.demo.cli", "run a simulated fleet through both flows, end to end: axon-dagster demo [--transport ...] [--json OUT]"),
    "dev": ("axon_dagster.demo.dev", "the simulated fleet plus `dagster dev`, until Ctrl-C"),
    "inspect": ("axon_dagster.inspection.cli", "inspect a Lance or MCAP recording: axon-dagster inspect PATH [--runner ...] [--json]"),
    "datasets": ("axon_dagster.datasets_cli", "search datasets: axon-dagster datasets --scene ... [--json]"),
    "accounts": ("axon_dagster.accounts_cli", "people and service tokens: axon-dagster accounts add NAME --role reviewer"),
}


def main(argv: list[str] | None = None) -> int:
    import importlib
    import warnings

    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
