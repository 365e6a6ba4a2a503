"""Build the object store a URL names: ``file://``, ``s3://``, ``gs://`` or ``az://``."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from .base import ObjectStore
from .local import LocalDirObjectStore
from .s3 import S3ObjectStore


GCS_XML_ENDPOINT = "https://storage.googleapis.com"


def object_store_from_url(url: str, endpoint_url: str | None = None) -> ObjectStore:
    """``file:///abs/path`` -> LocalDirObjectStore; ``s3://bucket/prefix`` -> S3ObjectStore, with the
    endpoint from ``endpoint_url`` or ``AWS_ENDPOINT_URL`` (S3-compatible stores such as MinIO);
    ``gs://bucket/prefix`` -> S3ObjectStore on Google Cloud Storage's S3-compatible XML API
    (HMAC keys in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; no x-amz-checksum headers, so
    uploads are verified by re-reading); ``az://account/container/prefix`` ->
    :class:`~.azure.AzureBlobObjectStore` (credentials from ``AZURE_STORAGE_CONNECTION_STRING``
    or ``AZURE_STORAGE_KEY``; endpoint from ``endpoint_url`` or ``AZURE_STORAGE_BLOB_ENDPOINT``)."""
    parts = urlsplit(url)
    if parts.scheme == "az":
        from .azure import azure_store_from_url

        return azure_store_from_url(url, endpoint_url=endpoint_url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"invalid object store URL {url!r}: file URLs name no host (use file:///abs/path)")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"invalid object store URL {url!r}: the path must be absolute")
        return LocalDirObjectStore(path)
    if parts.scheme in ("s3", "gs"):
        if parts.query or parts.fragment:
            raise ValueError(f"invalid object store URL {url!r}: no query or fragment allowed")
        if parts.scheme == "gs":
            return S3ObjectStore(
                parts.netloc, prefix=unquote(parts.path), endpoint_url=endpoint_url or GCS_XML_ENDPOINT, checksums=False,
                client_config={"region_name": os.environ.get("AWS_DEFAULT_REGION") or "auto"}, scheme="gs",
            )
        return S3ObjectStore(parts.netloc, prefix=unquote(parts.path), endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)
    raise ValueError(f"unsupported object store URL {url!r}: expected file:///abs/path, s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix")
