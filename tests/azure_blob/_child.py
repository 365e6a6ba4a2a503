"""Child process of the SIGKILL test: uploads one file through AzureBlobObjectStore with a capped
bucket, appending one line to ``log_path`` (O_APPEND) each time a block has been staged."""

from __future__ import annotations

import os
import sys

from axon_dagster.storage.object_stores.azure import AzureBlobObjectStore
from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue


def main(conn: str, container: str, src: str, key: str, log_path: str, block_size: str, rate: str) -> None:
    def hook(pipeline_request) -> None:
        req = pipeline_request.http_request
        if req.method == "PUT" and "comp=block" in req.url and "blocklist" not in req.url:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(fd, b"block\n")
            os.close(fd)

    store = AzureBlobObjectStore(
        container, "datasets", connection_string=conn, block_size=int(block_size), concurrency=1,
        rate_limiter=RateLimiter(int(rate)), upload_queue=UploadQueue(), client_kwargs={"raw_request_hook": hook},
    )
    store.put_file(src, key)


if __name__ == "__main__":
    main(*sys.argv[1:])
