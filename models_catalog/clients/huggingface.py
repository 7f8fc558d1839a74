"""Hugging Face Hub through `huggingface_hub`, pointed at `HF_ENDPOINT` (a mirror, or a test server).

Lists diffusers text-to-image pipelines and LoRA adapters; `model_info` is asked for file metadata so
every weight file comes with its size and LFS SHA-256. 429 answers are retried after `Retry-After`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx2
from django.conf import settings
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import ModelInfo

from .http import RetryPolicy, UpstreamError, UpstreamNotFound, retry_after_seconds

T = TypeVar("T")


class HuggingFaceClient:
    def __init__(
        self,
        *,
        endpoint: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = (endpoint or settings.HF_ENDPOINT or "https://huggingface.co").rstrip("/")
        self.token = token if token is not None else (settings.HF_TOKEN or None)
        self.api = HfApi(endpoint=self.endpoint, token=self.token or False)
        self.retry = retry or RetryPolicy(attempts=settings.KIZY_CATALOG_HTTP_ATTEMPTS)
        self.sleep = sleep
        self.waits: list[float] = []

    def iter_base_models(self, *, query: str | None = None, limit: int | None = None) -> Iterator[ModelInfo]:
        return self._call(
            lambda: self.api.list_models(
                filter=["diffusers"],
                pipeline_tag="text-to-image",
                search=query or None,
                sort="downloads",
                limit=limit,
            )
        )

    def iter_loras(self, *, query: str | None = None, limit: int | None = None) -> Iterator[ModelInfo]:
        return self._call(
            lambda: self.api.list_models(
                filter=["lora"],
                pipeline_tag="text-to-image",
                search=query or None,
                sort="downloads",
                limit=limit,
            )
        )

    def model_info(self, repo_id: str) -> ModelInfo:
        return self._call(lambda: self.api.model_info(repo_id, files_metadata=True))

    def file_url(self, repo_id: str, filename: str, revision: str | None = None) -> str:
        return hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)

    def repo_url(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}"

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                result = fn()
                # list_models is a lazy generator: materialise it so HTTP errors surface here.
                return list(result) if isinstance(result, Iterator) else result  # type: ignore[return-value]
            except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
                raise UpstreamNotFound(f"not found on {self.endpoint}: {exc}", status=404) from exc
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status == 404:
                    raise UpstreamNotFound(f"not found on {self.endpoint}", status=404) from exc
                if (status == 429 or (status or 0) >= 500) and attempt < self.retry.attempts:
                    header = exc.response.headers.get("Retry-After") if exc.response is not None else None
                    delay = retry_after_seconds(header)
                    self._wait(delay if delay is not None else self.retry.backoff_s * 2 ** (attempt - 1))
                    continue
                raise UpstreamError(f"Hugging Face answered {status}: {exc}", status=status) from exc
            except (OSError, httpx2.TransportError) as exc:  # the hub could not be reached
                if attempt < self.retry.attempts:
                    self._wait(self.retry.backoff_s * 2 ** (attempt - 1))
                    continue
                raise UpstreamError(f"could not reach {self.endpoint}: {exc}") from exc
        raise UpstreamError(f"gave up on {self.endpoint} after {self.retry.attempts} attempts")

    def _wait(self, seconds: float) -> None:
        seconds = min(seconds, self.retry.max_wait_s)
        self.waits.append(seconds)
        self.sleep(seconds)


def model_info_dict(info: ModelInfo) -> dict[str, Any]:
    """The parts of a ModelInfo the catalog reads, as plain data (normalisers stay library-agnostic)."""
    card = (
        info.card_data.to_dict() if info.card_data is not None and hasattr(info.card_data, "to_dict") else {}
    )
    return {
        "id": info.id,
        "author": info.author,
        "sha": info.sha,
        "tags": list(info.tags or []),
        "pipeline_tag": info.pipeline_tag,
        "library_name": info.library_name,
        "downloads": info.downloads or 0,
        "likes": info.likes or 0,
        "gated": info.gated,
        "disabled": bool(info.disabled),
        "private": bool(info.private),
        "card_data": card or {},
        "siblings": [
            {
                "rfilename": s.rfilename,
                "size": s.size if s.size is not None else (s.lfs.size if s.lfs else None),
                "blob_id": s.blob_id,
                "sha256": s.lfs.sha256 if s.lfs else None,
            }
            for s in (info.siblings or [])
        ],
    }
