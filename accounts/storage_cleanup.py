"""Deleting every stored file under a key prefix, on any storage backend (filesystem, S3, R2)."""
from __future__ import annotations

import logging

from django.core.files.storage import default_storage

logger = logging.getLogger(__name__)


def delete_prefix(prefix: str) -> int:
    """Delete every file under `prefix` (which ends with "/"); returns how many were deleted."""
    if not prefix.endswith("/") or prefix.strip("/") == "":
        raise ValueError(f"refusing to delete under {prefix!r}: give a folder such as 'ws/<id>/'")
    deleted = 0
    pending = [prefix]
    while pending:
        folder = pending.pop()
        try:
            folders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        for name in files:
            default_storage.delete(f"{folder}{name}")
            deleted += 1
        pending.extend(f"{folder}{sub}/" for sub in folders)
    logger.info("deleted %d stored files under %s", deleted, prefix)
    return deleted
