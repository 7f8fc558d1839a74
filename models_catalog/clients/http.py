"""A small JSON-over-HTTP client with the retry rules both catalog sources need.

429 answers are retried after the `Retry-After` the server sends (seconds or an HTTP date, capped);
5xx answers and network errors back off exponentially. Anything else that is not 2xx raises
`UpstreamError` with the status and a short excerpt of the body, so a sync report says what went wrong.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx


class UpstreamError(Exception):
    """The source answered with an error (or not at all); the message is fit for a sync report."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UpstreamNotFound(UpstreamError):
    """404: the item is gone upstream (or never existed)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 1.0
    max_wait_s: float = 120.0


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class JsonClient:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "Kizy-catalog/1.0",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.waits: list[float] = []  # what the client waited, for reports and tests
        self._http = httpx.Client(
            timeout=timeout,
            headers={"User-Agent": user_agent, "Accept": "application/json", **(headers or {})},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JsonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def get_json(self, path: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None) -> Any:
        url = self.url(path)
        last_error = ""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                self._wait(self.retry.backoff_s * 2 ** (attempt - 1), attempt)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last_error = f"HTTP {response.status_code} from {url}"
                delay = retry_after_seconds(response.headers.get("Retry-After"))
                self._wait(delay if delay is not None else self.retry.backoff_s * 2 ** (attempt - 1), attempt)
                continue
            if response.status_code == 404:
                raise UpstreamNotFound(f"not found upstream: {url}", status=404)
            if response.status_code >= 400:
                raise UpstreamError(
                    f"HTTP {response.status_code} from {url}: {response.text[:200]}",
                    status=response.status_code,
                )
            try:
                return response.json()
            except ValueError as exc:
                raise UpstreamError(f"{url} did not answer JSON ({exc})") from exc
        raise UpstreamError(f"gave up after {self.retry.attempts} attempts: {last_error}")

    def _wait(self, seconds: float, attempt: int) -> None:
        if attempt >= self.retry.attempts:
            return
        seconds = min(seconds, self.retry.max_wait_s)
        self.waits.append(seconds)
        self.sleep(seconds)
