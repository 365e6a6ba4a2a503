"""``python -m axon_dagster.settings check [--env prod] [--file PATH]``: validate the selected config
and the recording templates; print a summary (secrets only as set/unset), or exit 2 with the error."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from .base import ConfigError
from .files import AxonConfig, load_config
from .templates import RECORDING_TEMPLATES, recording_template


def _summary(cfg: AxonConfig, environ: Mapping[str, str]) -> list[str]:
    cp = cfg.control_plane
    token = cp.admin_token.resolve(environ)
    if cp.admin_token_required and not token:
        raise ConfigError(f"the admin token is required but not set ({cp.admin_token.describe()})",
                          key="control_plane.admin_token_env", source=cfg.source)
    db = cp.resolve_database_url(environ)
    if db is None:
        raise ConfigError(f"the database URL is not set ({cp.database_url_secret.describe()})",
                          key="control_plane.database_url_env", source=cfg.source)
    s, i = cfg.storage, cfg.inspection
    return [
        f"config OK: env={cfg.env} file={cfg.source}",
        f"  control_plane.url = {cp.url}; admin token: {'set' if token else 'unset'} ({cp.admin_token.describe()})",
        f"  database: {'from ' + cp.database_url_secret.describe() if cp.database_url is None else cp.database_url}",
        f"  storage.object_store = {s.object_store.url}" + (f" via {s.object_store.endpoint_url}" if s.object_store.endpoint_url else ""),
        f"  inspection.runner = {i.runner}" + (f" at {i.ray_address}" if i.ray_address else ""),
        f"  timeouts.control_plane_seconds = {cfg.timeouts.control_plane_seconds}; "
        f"retries.upload_attempts = {cfg.retries.upload_attempts}",
        f"  recording templates: {', '.join(RECORDING_TEMPLATES)}",
    ]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axon_dagster.settings", description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate the selected config and the recording templates")
    check.add_argument("--env", default=None, help="config name (default: AXON_ENV, else dev)")
    check.add_argument("--file", default=None, help="config file (default: AXON_CONFIG_FILE, else configs/<env>.yaml)")
    args = parser.parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    if args.file:
        environ["AXON_CONFIG_FILE"] = args.file
    try:
        cfg = load_config(None if args.file else args.env, environ=environ)
        for name in RECORDING_TEMPLATES:
            recording_template(name)
        lines = _summary(cfg, environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
