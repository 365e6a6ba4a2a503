"""``python -m axon_dagster.api [--host H] [--port P] [--database-url URL] [--upgrade]``"""

from __future__ import annotations

import argparse
import logging

from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m axon_dagster.api", description="Run the control-plane API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--database-url", default=None, help="default: AXON_DATABASE_URL or sqlite:///.axon/control-plane.db")
    parser.add_argument("--upgrade", action="store_true", help="migrate the database to the newest schema first")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: AXON_API_WORKERS, else one per CPU, at most 4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.host, args.port, args.database_url, upgrade_first=args.upgrade, log_level=args.log_level, workers=args.workers)


if __name__ == "__main__":
    main()
