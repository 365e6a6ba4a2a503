"""The cloud object store: one interface (:class:`ObjectStore`), one module per backend.

- :mod:`.base` — the interface, key rules, dataset operations written once;
- :mod:`.staging` — robots' uploads into the staging area (part targets, completion);
- :mod:`.signing` — signed part URLs of the control plane's ingest endpoint (local store);
- :mod:`.publish` — staged files into the lake by verified server-side copies;
- :mod:`.local` (``file://``), :mod:`.s3` (``s3://``, ``gs://``), :mod:`.azure` (``az://``);
- :func:`object_store_from_url` picks the backend a URL names.

No backend SDK is imported with this package (boto3 and azure-storage-blob load when a store is
built): the edge agent imports it on small robots.
"""

from .azure import AzureBlobObjectStore
from .base import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    validate_key,
    validate_prefix,
)
from .factory import object_store_from_url
from .local import LocalDirObjectStore
from .local_parts import PartWriter, UploadAbandoned, UploadFollower, UploadStalled
from .publish import publish_copies, publish_copy, verify_staged
from .s3 import S3ObjectStore
from .signing import PartSignatureError, load_signing_key, sign_part_url, verify_part_signature
from .staging import (
    DEFAULT_PART_SIZE,
    PartDigestMismatch,
    PartIncomplete,
    PartSpec,
    PartsRefused,
    PartTarget,
    PartTooLarge,
    StagingError,
    StagingUploads,
    UnknownUpload,
    plan_parts,
)

__all__ = [name for name in dir() if not name.startswith("_")]
