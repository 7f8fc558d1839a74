"""The S3 artifact store (what Modal containers use) against moto's real S3 server on loopback."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from gpu_workers.artifacts import ArtifactNotFound, InvalidArtifactKey, artifact_store_from_config


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_put_get_exists_round_trip(endpoint):
    bucket = f"kizy-{uuid.uuid4().hex[:10]}"
    config = {"kind": "s3", "bucket": bucket, "endpoint_url": endpoint, "access_key": "test", "secret_key": "test",
              "region": "us-east-1"}
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    store = artifact_store_from_config(config)
    key = "ws/ws-1/artifacts/" + "a" * 64 + ".png"
    assert not store.exists(key)
    store.put(key, b"png bytes", "image/png")
    assert store.exists(key) and store.get(key) == b"png bytes"
    store.put_json("ws/ws-1/checkpoints/x.json", {"a": 1})
    assert store.get_json("ws/ws-1/checkpoints/x.json") == {"a": 1}
    with pytest.raises(ArtifactNotFound):
        store.get("ws/ws-1/artifacts/" + "b" * 64 + ".png")
    with pytest.raises(InvalidArtifactKey):
        store.put("ws/../other/artifacts/x.png", b"", "image/png")
