"""Artifacts in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO), for workers that do not run
beside the site (Modal containers). Same keys as the site's storage, so both see the same files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpu_workers.artifacts import ArtifactNotFound, ArtifactStore, check_key


class S3ArtifactStore(ArtifactStore):
    def __init__(self, *, bucket: str, endpoint_url: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, region: str | None = None, client: Any = None) -> None:
        import boto3  # type: ignore[import-untyped]

        self.bucket = bucket
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url or None, aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None, region_name=region or None,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> S3ArtifactStore:
        bucket = config.get("bucket")
        if not isinstance(bucket, str) or not bucket:
            raise ValueError("s3 storage needs a 'bucket'")
        return cls(bucket=bucket, endpoint_url=config.get("endpoint_url"), access_key=config.get("access_key"),
                   secret_key=config.get("secret_key"), region=config.get("region"))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=check_key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except self.client.exceptions.NoSuchKey:
            raise ArtifactNotFound(key) from None
        return bytes(response["Body"].read())

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True
