"""``axon-dagster inspect``: inspect any Lance recording, or an MCAP recording, and print its QC report.

    axon-dagster inspect PATH [--requirements FILE] [--runner native|ray|ray-job]
                              [--ray-address ADDR] [--json] [--timeout S] [--job-python PY]
                              [--no-digest] [--quiet]

Prints a table (check, result, value, threshold, detail; then the score and outcome) or, with
``--json``, the report as JSON (per-check name, passed, value, threshold, weight, detail; score,
outcome, per-topic statistics). Progress is logged on stderr.

Exit status: 0 approved, 1 needs_review, 2 rejected, 3 could not inspect (bad arguments or
requirements, unreadable data, Ray unreachable — nothing was judged).

``PATH.mcap`` (a local file, e.g. Axon's ``<task_id>.mcap``): the MCAP is hashed and ingested into a
temporary Lance dataset with decoded columns (:func:`axon_dagster.ingest.ingest_mcap`, reading Axon's
sidecar beside it or the ``axon.*`` metadata records), which is inspected and then deleted; a
SHA-256 that differs from Axon's checksum fails ``sidecar_consistency``. An MCAP that is there but is
not a readable MCAP (truncated, corrupt) is rejected (``well_formed`` fails, with the reason); one that
cannot be opened at all exits 3.

Ray settings not given as options come from the environment (``AXON_RAY_ADDRESS``,
``AXON_RAY_AUTH_TOKEN`` / ``AXON_RAY_AUTH_TOKEN_FILE`` or Ray's own ``RAY_AUTH_TOKEN``,
``AXON_RAY_JOB_PYTHON``, ``AXON_RAY_TIMEOUT_SECONDS``); the token is never an option, so it never
shows in a process list.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from axon_dagster.domain import DomainError, QcOutcome

logger = logging.getLogger("axon_dagster.inspection.cli")

EXIT_CODES = {QcOutcome.APPROVED: 0, QcOutcome.NEEDS_REVIEW: 1, QcOutcome.REJECTED: 2}
EXIT_NOT_INSPECTED = 3
CLI_RUNNERS = ("native", "ray", "ray-job")


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (could not inspect), not argparse's 2 (which means rejected here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_NOT_INSPECTED, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="axon-dagster inspect",
        description="Inspect a Lance recording and print its QC report. "
        "Exit status: 0 approved, 1 needs_review, 2 rejected, 3 could not inspect.",
    )
    p.add_argument("path", help="the Lance recording (directory, file:// or s3:// URI) or a local .mcap recording")
    p.add_argument("--requirements", metavar="FILE", help="requirements as a YAML or JSON mapping (default: built-in defaults)")
    p.add_argument("--runner", choices=CLI_RUNNERS, default="native", help="where Daft runs (default: native)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="ray: host:6379 or ray://host:10001; ray-job: http://head:8265 (default: AXON_RAY_ADDRESS)")
    p.add_argument("--timeout", type=float, metavar="S", help="give up on a Ray inspection after S seconds")
    p.add_argument("--job-python", metavar="PY", help="python that runs the job on the cluster (ray-job; default: AXON_RAY_JOB_PYTHON or python)")
    p.add_argument("--no-digest", action="store_true",
                   help="compare the dataset's file names with its sidecar but skip hashing them (saves a full read)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return p


def load_requirements(path: str | None) -> dict[str, Any]:
    """The requirements mapping in ``path`` (YAML or JSON). ValueError with the reason if not."""
    if path is None:
        return {}
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read requirements file {path}: {exc.strerror or exc}") from None
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:  # YAML is a superset of JSON
            import yaml

            data = yaml.safe_load(text)
    except ValueError as exc:
        raise ValueError(f"requirements file {path} is not valid JSON: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        raise ValueError(f"requirements file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"requirements file {path} must hold a mapping of requirement keys, got {type(data).__name__}")
    return data


def main(argv: list[str] | None = None) -> int:
    """Run ``axon-dagster inspect``; returns the exit status (never raises for a failed run: an
    unexpected error is 3, not Python's 1, which would read as needs_review)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["inspect"]:
        args_in = args_in[1:]
    args = build_parser().parse_args(args_in)
    try:
        return _inspect(args)
    except Exception as exc:  # a bug must not pass for a verdict
        logger.exception("inspect failed unexpectedly")
        return _not_inspected(args, f"unexpected error: {type(exc).__name__}: {exc}")


def _inspect(args: argparse.Namespace) -> int:
    from .job import configure_logging

    configure_logging(logging.WARNING if args.quiet else logging.INFO)

    from .checks import checked_requirements
    from .errors import InspectionInfrastructureError
    from .inspector import inspect_recording

    try:
        requirements = checked_requirements(load_requirements(args.requirements))
        ray_config = None
        if args.runner != "native":
            from .ray_runners import RayConfig

            ray_config = RayConfig.from_env()
            if args.job_python:
                ray_config = dataclasses.replace(ray_config, job_python=args.job_python)
    except (ValueError, DomainError) as exc:
        return _not_inspected(args, f"bad input: {exc}")
    is_mcap = args.path.endswith(".mcap") and "://" not in args.path
    try:
        with tempfile.TemporaryDirectory(prefix="axon-inspect-") as scratch:
            target = args.path
            if is_mcap:
                from axon_dagster.ingest import IngestError

                try:
                    target = str(ingest_for_inspection(args.path, Path(scratch)))
                except IngestError as exc:  # the file is there and is not a readable MCAP: a verdict
                    from .inspector import malformed_report

                    target = None
                    report = malformed_report(args.path, requirements, str(exc))
                except OSError as exc:
                    return _not_inspected(args, f"cannot ingest the MCAP: {exc}")
            if target is not None:
                report = inspect_recording(target, requirements, runner=args.runner, ray_address=args.ray_address,
                                           ray_config=ray_config, timeout_s=args.timeout, verify_digest=not args.no_digest)
                if is_mcap:
                    report.dataset_path = args.path
    except InspectionInfrastructureError as exc:
        return _not_inspected(args, str(exc))
    except (ValueError, DomainError) as exc:
        return _not_inspected(args, f"bad input: {exc}")
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        print_report(report, requirements)
    return EXIT_CODES[report.outcome]


def ingest_for_inspection(mcap_path: str | Path, scratch: Path) -> Path:
    """Hash ``mcap_path`` and ingest it into ``scratch/<stem>.lance``; the Lance path."""
    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.storage.digest import file_sha256

    mcap = Path(mcap_path)
    if not mcap.is_file():
        raise FileNotFoundError(f"MCAP file not found: {mcap}")
    return ingest_mcap(mcap, scratch / f"{mcap.stem}.lance", mcap_sha256=file_sha256(mcap)).dataset_path


def _not_inspected(args: argparse.Namespace, message: str) -> int:
    logger.error("could not inspect %s: %s", args.path, message)
    if args.json:
        sys.stdout.write(json.dumps({"dataset_path": args.path, "outcome": None, "error": message}, indent=2) + "\n")
    else:
        sys.stderr.write(f"could not inspect {args.path}: {message}\n")
    return EXIT_NOT_INSPECTED


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def print_report(report, requirements, file=None) -> None:
    """The report as rich tables: checks, then the score and outcome, then per-topic statistics."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=max(120, Console().width), soft_wrap=False)
    checks = Table(title=f"QC report: {escape(report.dataset_path)}", title_justify="left")
    for column in ("check", "result", "value", "threshold", "weight", "detail"):
        checks.add_column(column, overflow="fold")
    for c in report.checks:
        if c.passed and c.weight == 0 and c.name != "rows_present":
            result = "[dim]n/a[/dim]"
        else:
            result = "[green]pass[/green]" if c.passed else "[bold red]FAIL[/bold red]"
        checks.add_row(c.name, result, escape(_fmt(c.value)), escape(_fmt(c.threshold)), f"{c.weight:g}", escape(c.detail))
    console.print(checks)
    colour = {"approved": "green", "needs_review": "yellow", "rejected": "red"}[report.outcome.value]
    console.print(
        f"score [bold]{report.score:.3f}[/bold] -> [bold {colour}]{report.outcome.value}[/bold {colour}] "
        f"(approve >= {requirements.auto_approve:g}, review >= {requirements.review_floor:g}); "
        f"{report.row_count} messages over {report.duration_s:.2f} s; runner {report.runner}, {report.elapsed_s:.2f} s"
    )
    if report.per_topic:
        topics = Table(title="per topic", title_justify="left")
        for column in ("topic", "count", "rate Hz", "max gap s", "dropped", "lost in gaps", "back steps", "frozen s"):
            topics.add_column(column, justify="left" if column == "topic" else "right")
        for name, s in report.per_topic.items():
            topics.add_row(escape(name), str(s.count), f"{s.rate_hz:.2f}", f"{s.max_gap_s:.3f}", str(s.dropped_messages),
                           str(s.lost_in_gaps), str(s.backward_steps), f"{s.longest_frozen_s:.3f}")
        console.print(topics)


if __name__ == "__main__":
    sys.exit(main())
