"""Build the object store a URL names: ``file://``, ``s3://``, ``gs://`` or ``az://``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from axon_dagster.settings.storage import (
    AZURE_ACCOUNT_KEY_ENV,
    AZURE_CONNECTION_STRING_ENV,
    AZURE_ENDPOINT_ENV,
    AwsSettings,
    AzureSettings,
)

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
                client_config={"region_name": AwsSettings.load().default_region or "auto"}, scheme="gs",
            )
        return S3ObjectStore(parts.netloc, prefix=unquote(parts.path), endpoint_url=endpoint_url or AwsSettings.load().endpoint_url)
    raise ValueError(f"unsupported object store URL {url!r}: expected file:///abs/path, s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix")


# --------------------------------------------------------------------------- Azure



def _connection_string_fields(conn: str) -> dict[str, str]:
    return {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in conn.split(";") if "=" in p)}


def azure_store_from_url(url: str, endpoint_url: str | None = None, environ: Mapping[str, str] | None = None, **options: Any) -> Any:
    """``az://<account>/<container>/<prefix>``. Credentials from ``AZURE_STORAGE_CONNECTION_STRING``
    (its account must be ``<account>``) or the account key in ``AZURE_STORAGE_KEY``; the endpoint
    from ``endpoint_url``, ``AZURE_STORAGE_BLOB_ENDPOINT`` (Azurite:
    ``http://127.0.0.1:10000/devstoreaccount1``), the connection string, or
    ``https://<account>.blob.core.windows.net``. Raises ValueError (nothing built) without them."""
    from .azure import AzureBlobObjectStore, validate_container  # the class only; the SDK loads when it is built

    azure = AzureSettings.load(environ)
    parts = urlsplit(url)
    if parts.scheme != "az":
        raise ValueError(f"not an Azure Blob URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid object store URL {url!r}: no query or fragment allowed")
    account = parts.netloc
    if not re.fullmatch(r"[a-z0-9]{3,24}", account or ""):
        raise ValueError(f"invalid object store URL {url!r}: expected az://<account>/<container>/<prefix>, account of 3-24 a-z/0-9")
    container, _, prefix = unquote(parts.path).lstrip("/").partition("/")
    validate_container(container)
    endpoint = endpoint_url or azure.blob_endpoint
    conn = azure.connection_string or ""
    key = azure.account_key or ""
    if conn:
        fields = _connection_string_fields(conn)
        if fields.get("accountname") and fields["accountname"] != account:
            raise ValueError(f"{AZURE_CONNECTION_STRING_ENV} is for account {fields['accountname']!r}, but the URL {url!r} names {account!r}")
        if endpoint is None:
            return AzureBlobObjectStore(container, prefix, connection_string=conn, **options)
        key = key or fields.get("accountkey", "")
        if not key and fields.get("sharedaccesssignature"):
            return AzureBlobObjectStore(container, prefix, account_url=endpoint, credential=fields["sharedaccesssignature"], **options)
    if not key:
        raise ValueError(
            f"no credentials for {url!r}: set {AZURE_CONNECTION_STRING_ENV} (a storage connection string) "
            f"or {AZURE_ACCOUNT_KEY_ENV} (the account key of {account!r}); {AZURE_ENDPOINT_ENV} overrides the endpoint (e.g. Azurite)"
        )
    return AzureBlobObjectStore(
        container, prefix, account_url=endpoint or f"https://{account}.blob.core.windows.net",
        credential={"account_name": account, "account_key": key}, **options,
    )
