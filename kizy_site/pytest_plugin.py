"""Loaded with `-p` before Django settings: gives the test session an embedded Redis when
`REDIS_URL` is not set, and a throwaway KIZY_HOME so tests never touch a developer's data."""
from __future__ import annotations

import os
import tempfile

if not os.environ.get("KIZY_HOME"):
    os.environ["KIZY_HOME"] = tempfile.mkdtemp(prefix="kizy-test-home-")
# The CPU-only test node pack loads beside the built-ins (M4: only allow-listed packs load).
os.environ.setdefault("KIZY_NODE_PACKS", "kizy,kizy-testpack")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("KIZY_WARM_UP", "false")  # tests import the ASGI app; no background warm-up there
if not os.environ.get("REDIS_URL"):
    from kizy_site.embedded_redis import start_embedded_redis

    os.environ["REDIS_URL"] = start_embedded_redis()
