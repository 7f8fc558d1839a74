"""CivitAI REST API v1: models (LORA and Checkpoint), model versions, lookups by hash.

Lists are paged by cursor (`metadata.nextCursor`); a search query only works with cursors. The
`nextPage` URL is used only for its query string, never followed to another host.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from .http import JsonClient, RetryPolicy

CATALOG_TYPES = ("LORA", "Checkpoint")
LORA_TYPES = frozenset({"LORA", "LoCon", "DoRA"})


class CivitaiClient(JsonClient):
    def __init__(self, *, base_url: str | None = None, token: str | None = None, **kwargs: Any) -> None:
        token = settings.CIVITAI_TOKEN if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(base_url or settings.CIVITAI_API_BASE, headers=headers, **kwargs)
        self.token = token

    def iter_models(
        self,
        *,
        types: Iterable[str] = CATALOG_TYPES,
        query: str | None = None,
        limit: int | None = None,
        sort: str = "Highest Rated",
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Every model of `types`, best first, following cursors until `limit` models were yielded."""
        params: dict[str, Any] = {
            "types": list(types),
            "sort": sort,
            "limit": min(page_size, limit or page_size),
        }
        if query:
            params["query"] = query
        yielded = 0
        seen_cursors: set[str] = set()
        while True:
            page = self.get_json("models", params=params)
            for item in page.get("items") or []:
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = _next_cursor(page.get("metadata") or {})
            if not cursor or cursor in seen_cursors:
                return
            seen_cursors.add(cursor)
            params = {**params, "cursor": cursor}
            params.pop("page", None)

    def get_model(self, model_id: int | str) -> dict[str, Any]:
        return self.get_json(f"models/{int(model_id)}")

    def get_model_version(self, version_id: int | str) -> dict[str, Any]:
        return self.get_json(f"model-versions/{int(version_id)}")

    def get_model_version_by_hash(self, sha256: str) -> dict[str, Any]:
        return self.get_json(f"model-versions/by-hash/{sha256}")


def _next_cursor(metadata: dict[str, Any]) -> str | None:
    if metadata.get("nextCursor"):
        return str(metadata["nextCursor"])
    next_page = metadata.get("nextPage")
    if next_page:
        values = parse_qs(urlsplit(str(next_page)).query).get("cursor")
        if values:
            return values[0]
    return None


def default_client(**kwargs: Any) -> CivitaiClient:
    return CivitaiClient(retry=RetryPolicy(attempts=settings.KIZY_CATALOG_HTTP_ATTEMPTS), **kwargs)
