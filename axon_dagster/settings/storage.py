"""Credentials and endpoints of the object stores, from the variables their SDKs document (AWS_*,
AZURE_STORAGE_*): read by the object-store factory, the uploaders and Daft's S3 reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .environ import Env

Environ = Mapping[str, str] | None

UPLOAD_STATE_DIR_ENV = "AXON_UPLOAD_STATE_DIR"
UPLOAD_BANDWIDTH_ENV = "AXON_UPLOAD_BANDWIDTH"
AZURE_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
AZURE_ACCOUNT_KEY_ENV = "AZURE_STORAGE_KEY"
AZURE_ENDPOINT_ENV = "AZURE_STORAGE_BLOB_ENDPOINT"


@dataclass(frozen=True)
class UploaderSettings:
    """Where the cloud-side uploaders keep their state (resumable uploads, the measured throughput the
    bandwidth sensor reads) and how fast they may send."""

    state_dir: str = ".axon/upload-state"
    bandwidth: str | None = None  # bytes/s or a JSON schedule; storage.bandwidth parses it (None: uncapped)

    @classmethod
    def load(cls, environ: Environ = None) -> UploaderSettings:
        env = Env(environ)
        return cls(state_dir=env.text(UPLOAD_STATE_DIR_ENV, cls.state_dir), bandwidth=env.text(UPLOAD_BANDWIDTH_ENV))


@dataclass(frozen=True)
class AwsSettings:
    endpoint_url: str | None = None  # AWS_ENDPOINT_URL: an S3-compatible store (MinIO, moto, ...)
    s3_endpoint_url: str | None = None  # AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL
    region: str | None = None  # AWS_REGION, else AWS_DEFAULT_REGION
    default_region: str | None = None  # AWS_DEFAULT_REGION
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, environ: Environ = None) -> AwsSettings:
        env = Env(environ)
        return cls(
            endpoint_url=env.raw("AWS_ENDPOINT_URL"),
            s3_endpoint_url=env.raw("AWS_ENDPOINT_URL_S3") or env.raw("AWS_ENDPOINT_URL"),
            region=env.raw("AWS_REGION") or env.raw("AWS_DEFAULT_REGION"),
            default_region=env.raw("AWS_DEFAULT_REGION"),
            access_key_id=env.raw("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.raw("AWS_SECRET_ACCESS_KEY"),
            session_token=env.raw("AWS_SESSION_TOKEN"),
        )


@dataclass(frozen=True)
class AzureSettings:
    connection_string: str | None = field(default=None, repr=False)
    account_key: str | None = field(default=None, repr=False)
    blob_endpoint: str | None = None

    @classmethod
    def load(cls, environ: Environ = None) -> AzureSettings:
        env = Env(environ)
        return cls(connection_string=env.raw(AZURE_CONNECTION_STRING_ENV), account_key=env.raw(AZURE_ACCOUNT_KEY_ENV),
                   blob_endpoint=env.raw(AZURE_ENDPOINT_ENV))
