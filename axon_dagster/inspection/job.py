"""Entry point of an inspection run as a (Ray) job — what the KubeRay runner's RayJob executes:

    python -m axon_dagster.inspection.job --dataset <uri> --requirements <json> --output <uri>

It inspects the dataset and writes the report JSON to ``--output`` (a local path, ``file://`` or
``s3://bucket/key``). Exit status: 0 when a report was written, whatever its verdict; 2 for bad
arguments or requirements; 3 when the data could not be read (infrastructure — the caller retries;
it never becomes a verdict).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from axon_dagster.domain import DomainError

from .errors import InspectionInfrastructureError
from .checks import checked_requirements
from .inspector import NATIVE, run_inspection, use_native_runner
from .report import InspectionReport

logger = logging.getLogger(__name__)

RAY = "ray"
EXIT_BAD_INPUT = 2
EXIT_INFRASTRUCTURE = 3


def write_report(report: InspectionReport, output_uri: str) -> str:
    """Write ``report`` to a local path, ``file:///abs/path`` or ``s3://bucket/key``; return where."""
    parts = urlsplit(output_uri)
    if parts.scheme == "s3":
        from axon_dagster.storage.object_store import object_store_from_url

        prefix, _, name = parts.path.strip("/").rpartition("/")
        if not parts.netloc or not name:
            raise ValueError(f"output {output_uri!r} must name an object: s3://bucket/key")
        store = object_store_from_url(f"s3://{parts.netloc}/{prefix}")
        return store.put_bytes(name, report.to_json().encode())
    if parts.scheme not in ("", "file"):
        raise ValueError(f"unsupported output {output_uri!r}: expected a path, file:///abs/path or s3://bucket/key")
    path = Path(unquote(parts.path) if parts.scheme == "file" else output_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(report.write(path))


def _use_ray_runner() -> None:
    """Inside a Ray job RAY_ADDRESS names the cluster; Daft's Ray runner connects to it."""
    import daft

    daft.set_runner_ray(noop_if_initialized=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axon_dagster.inspection.job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="Lance recording: path or URI")
    parser.add_argument("--requirements", required=True, help="requirements as a JSON object")
    parser.add_argument("--output", required=True, help="where to write the report JSON: path, file:// or s3://")
    parser.add_argument("--runner", choices=[RAY, NATIVE], default=RAY, help="Daft runner (default: ray)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        requirements = checked_requirements(json.loads(args.requirements))
        if urlsplit(args.output).scheme not in ("", "file", "s3"):
            raise ValueError(f"unsupported output {args.output!r}: expected a path, file:///abs/path or s3://bucket/key")
    except (ValueError, DomainError) as exc:  # JSONDecodeError and PlanningError are ValueErrors
        logger.error("bad input: %s", exc)
        return EXIT_BAD_INPUT
    try:
        if args.runner == NATIVE:
            use_native_runner(args.dataset)
        else:
            _use_ray_runner()
        report = run_inspection(args.dataset, requirements, runner=args.runner)
    except InspectionInfrastructureError as exc:
        logger.error("%s", exc)
        return EXIT_INFRASTRUCTURE
    except Exception as exc:  # Daft could not start or reach its runner: infrastructure too
        logger.exception("inspection of %s could not run: %s", args.dataset, exc)
        return EXIT_INFRASTRUCTURE
    try:
        where = write_report(report, args.output)
    except Exception as exc:  # storage unreachable: infrastructure, retried by the caller
        logger.error("could not write the report to %s: %s", args.output, exc)
        return EXIT_INFRASTRUCTURE
    logger.info("report for %s written to %s: %s (score %.3f)", args.dataset, where, report.outcome.value, report.score)
    return 0


if __name__ == "__main__":
    sys.exit(main())
