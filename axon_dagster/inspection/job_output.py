"""What the inspection job (:mod:`.job`) writes and how its callers read it back: the report JSON at
a path, ``file://`` or ``s3://`` URI, or on one stdout line after :data:`REPORT_MARKER` (read from a
Ray job's logs). Shared by the job and the runners that launch it (:mod:`.ray_runners`,
:mod:`.kuberay`), so that neither imports the other.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .report import InspectionReport

ENTRYPOINT_MODULE = "axon_dagster.inspection.job"  # what the runners execute: python -m ...
STDOUT = "-"
REPORT_MARKER = "AXON_QC_REPORT "


def write_report(report: InspectionReport, output_uri: str) -> str:
    """Write ``report`` to a local path, ``file:///abs/path`` or ``s3://bucket/key``; return where."""
    if output_uri == STDOUT:
        sys.stdout.write(REPORT_MARKER + json.dumps(report.to_dict(), sort_keys=True, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        return "stdout"
    parts = urlsplit(output_uri)
    if parts.scheme == "s3":
        from axon_dagster.storage.object_stores import object_store_from_url

        prefix, name = _s3_key(output_uri)
        store = object_store_from_url(f"s3://{parts.netloc}/{prefix}")
        return store.put_bytes(name, report.to_json().encode())
    path = _local(output_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(report.write(path))


def read_report(output_uri: str) -> InspectionReport:
    """Read a report written by :func:`write_report` (path, ``file://`` or ``s3://``)."""
    parts = urlsplit(output_uri)
    if parts.scheme == "s3":
        from axon_dagster.storage.object_stores import object_store_from_url

        prefix, name = _s3_key(output_uri)
        data = object_store_from_url(f"s3://{parts.netloc}/{prefix}").get_bytes(name)
        return InspectionReport.from_dict(json.loads(data))
    return InspectionReport.read(_local(output_uri))


def _s3_key(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    prefix, _, name = parts.path.strip("/").rpartition("/")
    if not parts.netloc or not name:
        raise ValueError(f"output {uri!r} must name an object: s3://bucket/key")
    return prefix, name


def _local(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.scheme not in ("", "file"):
        raise ValueError(f"unsupported output {uri!r}: expected a path, file:///abs/path, s3://bucket/key or -")
    return Path(unquote(parts.path) if parts.scheme == "file" else uri)
