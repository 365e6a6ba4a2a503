"""Entry point of an inspection run as a (Ray) job — what the Ray runners execute:

    python -m axon_dagster.inspection.job --dataset <uri> --requirements <json> --output <uri|->
        [--runner ray|native] [--ray-address ADDR] [--no-digest]

It inspects the dataset and writes the report JSON to ``--output`` (a local path, ``file://`` or
``s3://bucket/key``), or with ``--output -`` prints it on one stdout line starting with
``AXON_QC_REPORT `` (read back from the Ray job's logs). Exit status: 0 when a report was written,
whatever its verdict; 2 for bad arguments or requirements; 3 when the inspection could not run
(infrastructure — the caller retries; it never becomes a verdict).

With ``--runner ray`` Daft connects to ``--ray-address``, else to the cluster a Ray job runs in
(``RAY_ADDRESS``). Token auth comes from the environment (``RAY_AUTH_MODE=token``,
``RAY_AUTH_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from urllib.parse import urlsplit

from axon_dagster.domain import DomainError

from .checks import checked_requirements
from .errors import InspectionInfrastructureError
from .inspector import NATIVE, RAY, run_inspection, use_native_runner
from .job_output import REPORT_MARKER, STDOUT, read_report, write_report

logger = logging.getLogger(__name__)

__all__ = ["REPORT_MARKER", "STDOUT", "main", "read_report", "write_report"]

EXIT_BAD_INPUT = 2
EXIT_INFRASTRUCTURE = 3


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines to stderr; Daft's per-operator tracing spans stay quiet."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tracing").setLevel(logging.WARNING)
    logging.getLogger("tracing.span").setLevel(logging.WARNING)


def _use_ray_runner(address: str | None) -> None:
    """Connect Daft's Ray runner: to ``address``, or inside a Ray job to RAY_ADDRESS."""
    import daft
    import ray

    if address and not ray.is_initialized():
        # Connect first, so Daft's workers get our environment (no progress bars in the logs).
        # Inside a Ray job the job's runtime_env already carries it.
        ray.init(address=address, runtime_env={"env_vars": {"DAFT_PROGRESS_BAR": "0"}})
    daft.set_runner_ray(noop_if_initialized=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axon_dagster.inspection.job", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="Lance recording: path or URI")
    parser.add_argument("--requirements", required=True, help="requirements as a JSON object")
    parser.add_argument("--output", required=True, help="where to write the report JSON: path, file://, s3:// or - (stdout)")
    parser.add_argument("--runner", choices=[RAY, NATIVE], default=RAY, help="Daft runner (default: ray)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address for --runner ray (default: RAY_ADDRESS)")
    parser.add_argument("--no-digest", action="store_true", help="compare file names with the sidecar, skip hashing them")
    args = parser.parse_args(argv)
    configure_logging()

    try:
        requirements = checked_requirements(json.loads(args.requirements))
        if args.output != STDOUT and urlsplit(args.output).scheme not in ("", "file", "s3"):
            raise ValueError(f"unsupported output {args.output!r}: expected a path, file:///abs/path, s3://bucket/key or -")
    except (ValueError, DomainError) as exc:  # JSONDecodeError and PlanningError are ValueErrors
        logger.error("bad input: %s", exc)
        return EXIT_BAD_INPUT
    try:
        if args.runner == NATIVE:
            use_native_runner(args.dataset)
        else:
            _use_ray_runner(args.ray_address)
        report = run_inspection(args.dataset, requirements, runner=args.runner, verify_digest=not args.no_digest)
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
