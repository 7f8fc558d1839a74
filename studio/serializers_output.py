"""The one JSON shape of a generation (API responses, websocket final events, webhook payloads)."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from kizy_site.storage import absolute, signed_url

from .models import Generation


def _download_link(key: str, filename: str) -> str | None:
    """A presigned S3/R2 link that answers with `Content-Disposition: attachment`; None on the filesystem
    backend, whose same-origin `/files/` links already download through the `download` attribute."""
    from django.core.files.storage import storages

    from kizy_site.storage import PrivateFileSystemStorage

    backend = storages["default"]
    if isinstance(backend, PrivateFileSystemStorage):
        return None
    try:
        return str(backend.url(key, parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'}))
    except TypeError:  # a backend without per-link response headers
        return None


def output_files(generation: Generation, request: HttpRequest | None = None, *,
                 absolute_urls: bool = True) -> list[dict[str, Any]]:
    """Signed links to the outputs: absolute for API clients and webhooks (KIZY_SITE_URL without a
    request), or relative for the site's own pages and websockets, which then work on any host name."""
    files = []

    def link(key: str) -> str:
        url = signed_url(key)
        return absolute(request, url) if absolute_urls else url

    for index, item in enumerate(generation.outputs or []):
        url = link(item["key"])
        extension = item["key"].rsplit(".", 1)[-1] if "." in item["key"] else "bin"
        download = _download_link(item["key"], f"kizy-{str(generation.pk)[:8]}-{index + 1}.{extension}")
        # A small WebP for tiles; outputs recorded before thumbnails existed fall back to the image itself.
        thumbnail = link(item["thumbnail_key"]) if item.get("thumbnail_key") else (
            url if item.get("kind") == "image" else None)
        files.append({
            "url": url,
            "thumbnail_url": thumbnail,
            # Saves the file instead of opening it: a browser ignores `download` on another origin (S3/R2).
            "download_url": download or url,
            # A stable reference to the workspace's own file (the signed URL expires): give it back as
            # `image` to use this output as the next guide image.
            "key": item["key"],
            **{k: item[k] for k in ("kind", "content_type", "width", "height", "frames", "fps", "sha256", "node")
               if k in item},
        })
    return files


def job_urls(generation: Generation, request: HttpRequest | None, base: str = "/api/v1/generations") -> dict[str, str]:
    return {
        "get": absolute(request, f"{base}/{generation.pk}"),
        "cancel": absolute(request, f"{base}/{generation.pk}/cancel"),
        "stream": absolute(request, f"/ws/generations/{generation.pk}/").replace("http", "ws", 1),
    }


def generation_payload(generation: Generation, request: HttpRequest | None = None) -> dict[str, Any]:
    return {
        "id": str(generation.pk),
        "source": generation.source,
        "status": generation.status,
        "progress": round(generation.progress, 4),
        "current_node": {"id": generation.current_node, "title": generation.current_title}
        if generation.current_node else None,
        "request": generation.request,
        "outputs": output_files(generation, request) if generation.status == "succeeded" else [],
        "error": generation.error or None,
        "logs": generation.logs,
        "nodes": generation.node_states,
        "reproducibility": generation.reproducibility,
        "metrics": {"predict_time": generation.predict_seconds},
        "webhook": generation.webhook or None,
        "webhook_events_filter": generation.webhook_events_filter,
        "created_at": generation.created_at.isoformat() if generation.created_at else None,
        "started_at": generation.started_at.isoformat() if generation.started_at else None,
        "completed_at": generation.completed_at.isoformat() if generation.completed_at else None,
        "urls": job_urls(generation, request),
    }


def generation_output_event(generation: Generation) -> dict[str, Any]:
    """Fields added to the final websocket event so the page can show results without a reload."""
    return {"outputs": output_files(generation, absolute_urls=False) if generation.status == "succeeded" else []}
