"""Settings of the control plane's robot-upload routes (issue 13): where robots' uploads are staged
and how the control plane signs the file store's part URLs.

- the staging store is the code location's object store (``AXON_OBJECT_STORE_URL`` /
  ``storage.object_store.url``, ``AWS_ENDPOINT_URL``): the data flow reads what robots staged there;
- ``AXON_PUBLIC_API_URL``: the URL robots reach the API at, in the file store's part URLs
  (unset: the URL the robot's plan request came in on);
- ``AXON_UPLOAD_SIGNING_KEY``: the key of those URLs (unset: generated once, ``0600``, beside a
  SQLite database; required with PostgreSQL when the store is ``file://``);
- ``AXON_UPLOAD_PART_BYTES`` (default: the store's, 8 MiB for S3/GCS and Azure, 64 MiB for the
  ``file://`` store's ingest endpoint, whose cost is per request), ``AXON_MAX_RECORDING_FILE_BYTES`` (default 5 TiB),
  ``AXON_UPLOAD_GRANT_SWEEP_SECONDS`` (how often due grants are expired, default 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .code_location import ObjectStoreSettings
from .environ import Env

MiB = 1 << 20


@dataclass(frozen=True)
class UploadApiSettings:
    object_store_url: str
    endpoint_url: str | None = None
    public_api_url: str | None = None
    signing_key: str | None = None
    part_size: int | None = None  # None: the store's default_part_size
    max_file_bytes: int = 5 * 1024**4
    grant_sweep_seconds: float = 5.0

    def __repr__(self) -> str:  # never print the key
        return (f"UploadApiSettings(object_store_url={self.object_store_url!r}, public_api_url={self.public_api_url!r}, "
                f"signing_key=<{'set' if self.signing_key else 'unset'}>, part_size={self.part_size})")


def load_upload_api_settings(environ: Mapping[str, str] | None = None) -> UploadApiSettings:
    env = Env(environ)
    store = ObjectStoreSettings.load(environ)
    return UploadApiSettings(
        object_store_url=store.url,
        endpoint_url=store.endpoint_url,
        public_api_url=env.text("AXON_PUBLIC_API_URL"),
        signing_key=env.text("AXON_UPLOAD_SIGNING_KEY"),
        part_size=env.integer("AXON_UPLOAD_PART_BYTES", None, minimum=5 * MiB),
        max_file_bytes=env.integer("AXON_MAX_RECORDING_FILE_BYTES", 5 * 1024**4, minimum=1),
        grant_sweep_seconds=env.number("AXON_UPLOAD_GRANT_SWEEP_SECONDS", 5.0, positive=True),
    )
