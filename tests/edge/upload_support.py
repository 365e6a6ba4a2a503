"""A stand-in for the control plane's upload routes, over a real S3 endpoint (moto's server over
HTTP): it creates the multipart uploads, pre-signs part URLs with boto3, lists the done parts and
completes — what CONTRACT-13 says the control plane does — so the robot's uploader can be tested on
its own. The agent-level tests use the real control plane instead."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from axon_dagster.client import ControlPlaneError

MiB = 1 << 20


@dataclass
class PresignedPlans:
    s3: Any
    bucket: str
    manifest: dict[str, Any]
    task_id: str = "t-1"
    grant_id: str = "g-1"
    part_size: int = 5 * MiB
    expires_s: int = 900
    upload_ids: dict[str, str] = field(default_factory=dict)
    plans: int = 0
    completed: dict[str, bytes] = field(default_factory=dict)
    expired: bool = False

    def key(self, name: str) -> str:
        return f"staging/robot-1/{self.task_id}/{name}"

    def plan(self, task_id: str, grant_id: str) -> dict[str, Any]:
        if self.expired or grant_id != self.grant_id:
            raise ControlPlaneError(409, f"grant {grant_id} is not active (expired)")
        self.plans += 1
        files = []
        for f in self.manifest["files"]:
            name, size = f["name"], f["size"]
            if name not in self.upload_ids:
                self.upload_ids[name] = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key(name))["UploadId"]
            upload_id = self.upload_ids[name]
            parts = []
            for number, offset in enumerate(range(0, max(size, 1), self.part_size), start=1):
                part = min(self.part_size, size - offset)
                url = self.s3.generate_presigned_url(
                    "upload_part", ExpiresIn=self.expires_s,
                    Params={"Bucket": self.bucket, "Key": self.key(name), "UploadId": upload_id, "PartNumber": number},
                )
                parts.append({"number": number, "offset": offset, "size": part, "url": url, "method": "PUT", "headers": {}})
            listed = self.s3.list_parts(Bucket=self.bucket, Key=self.key(name), UploadId=upload_id).get("Parts", [])
            done = [{"number": p["PartNumber"], "etag": p["ETag"]} for p in listed]
            files.append({"name": name, "size": size, "sha256": f["sha256"], "parts": parts, "done_parts": done})
        return {"grant_id": grant_id, "expires_at": "2099-01-01T00:00:00+00:00", "part_size": self.part_size, "files": files}

    def complete(self, task_id: str, grant_id: str, files: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        if self.expired or grant_id != self.grant_id:
            raise ControlPlaneError(409, f"grant {grant_id} is not active (expired)")
        for f in self.manifest["files"]:
            name = f["name"]
            parts = [{"PartNumber": p["number"], "ETag": p["etag"]} for p in files[name]]
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key(name), UploadId=self.upload_ids[name], MultipartUpload={"Parts": parts}
            )
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
            if hashlib.sha256(body).hexdigest() != f["sha256"]:
                raise ControlPlaneError(409, f"digest of staged {name} is wrong")
            self.completed[name] = body
        return {"status": "STAGED"}

    # what UploadApi offers besides
    origin = ""

    def auth_headers(self) -> dict[str, str]:
        return {}
