"""``axon-dagster datasets``: search datasets by scene, sub-scene, skills, status, QC outcome,
lineage and time, over the control-plane store (``AXON_DATABASE_URL``) or a running API
(``--api-url``). Same filters and answers as ``GET /api/v1/dataset-search``.

Exit codes: 0 ok, 2 bad arguments (the message names the bad filter), 1 store/API unavailable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axon-dagster datasets", description="Search datasets with their lineage.")
    p.add_argument("--scene")
    p.add_argument("--sub-scene", dest="sub_scene")
    p.add_argument("--skill", action="append", default=[], help="repeat for several; a dataset must have all")
    p.add_argument("--status", help="recorded, cached, inspected, uploading, uploaded, archived, deleted (any case)")
    p.add_argument("--outcome", help="QC outcome: approved, needs_review, rejected")
    p.add_argument("--order", dest="order_id")
    p.add_argument("--batch", dest="batch_id")
    p.add_argument("--robot", dest="robot_id")
    p.add_argument("--collector", dest="collector_id")
    p.add_argument("--since", help="YYYY-MM-DD or ISO 8601 (UTC when no zone)")
    p.add_argument("--until")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the page as JSON")
    p.add_argument("--database-url", help="default: AXON_DATABASE_URL")
    p.add_argument("--api-url", help="query a running control-plane API instead of the store")
    p.add_argument("--token", help="admin token for --api-url (default: AXON_ADMIN_TOKEN)")
    return p


FILTER_ARGS = ("scene", "sub_scene", "status", "outcome", "order_id", "batch_id", "robot_id", "collector_id", "since", "until")


def search(args: argparse.Namespace) -> dict[str, Any]:
    if args.api_url:
        import httpx

        from axon_dagster.settings.tools import CliSettings

        params: list[tuple[str, Any]] = [(k, getattr(args, k)) for k in FILTER_ARGS if getattr(args, k)]
        params += [("skill", s) for s in args.skill] + [("limit", args.limit), ("offset", args.offset)]
        token = args.token or CliSettings.load().admin_token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = httpx.get(args.api_url.rstrip("/") + "/api/v1/dataset-search", params=params, headers=headers, timeout=30)
        if r.status_code in (400, 422):
            raise ValueError(r.json().get("detail", r.text))
        r.raise_for_status()
        return r.json()
    from axon_dagster.control_plane import dataset_search as ds
    from axon_dagster.settings import load_settings
    from axon_dagster.control_plane.persistence import UnitOfWorkFactory, check_schema, make_engine

    query = ds.build_query(skills=args.skill, **{k: getattr(args, k) for k in FILTER_ARGS})
    engine = make_engine(args.database_url or load_settings().database_url)
    try:
        check_schema(engine)
        return ds.search_datasets(UnitOfWorkFactory(engine)(), query, limit=args.limit, offset=args.offset)
    finally:
        engine.dispose()


def _table(page: dict[str, Any]) -> str:
    lines = [f"{page['total']} dataset(s); showing {len(page['datasets'])} from offset {page['offset']}"]
    cols = ("dataset_id", "status", "qc", "scene", "skills", "robot", "collector", "cloud_uri")
    rows = [cols]
    for d in page["datasets"]:
        qc = f"{d['qc_outcome']} {d['qc_score']:.2f}" if d["qc_outcome"] and d["qc_score"] is not None else (d["qc_outcome"] or "-")
        scene = d["scene"] + (f"/{d['sub_scene']}" if d["sub_scene"] else "")
        lin = d["lineage"]
        rows.append((d["dataset_id"], d["status"], qc, scene, ",".join(d["skills"]), lin["robot_id"] or "-",
                     lin["collector_id"] or "-", d["cloud_uri"] or "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(cols))]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        page = search(args)
    except ValueError as exc:  # InvalidRequestError, InvalidIdError, PlanningError are ValueErrors
        print(f"axon-dagster datasets: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # store or API unavailable
        print(f"axon-dagster datasets: cannot search: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(page, indent=2) if args.json else _table(page))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
