"""Private file storage. On the filesystem backend, `url()` returns a short-lived signed link to
`/files/<name>` (verified by `serve_signed_file`); on S3/R2, django-storages presigns the URL."""
from __future__ import annotations

import hashlib
import hmac
import mimetypes
import time
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage, storages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.deconstruct import deconstructible

# Types a browser may render inline; anything else is a download (U4: no sniffing, no HTML).
INLINE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "video/mp4", "video/webm", "application/json"}


def _signature(name: str, expires: int) -> str:
    message = f"{name}\n{expires}".encode()
    key = hashlib.sha256(("kizy-files:" + settings.SECRET_KEY).encode()).digest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_file_url(name: str, ttl: int | None = None, now: float | None = None) -> str:
    expires = int((now or time.time()) + (ttl or settings.KIZY_SIGNED_URL_TTL))
    query = urlencode({"expires": expires, "signature": _signature(name, expires)})
    return f"/files/{quote(name)}?{query}"


def verify_signature(name: str, expires: str, signature: str, now: float | None = None) -> bool:
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        return False
    if expires_at < (now or time.time()):
        return False
    return hmac.compare_digest(_signature(name, expires_at), signature or "")


@deconstructible
class PrivateFileSystemStorage(FileSystemStorage):
    def url(self, name: str | None) -> str:
        if not name:
            raise ValueError("A file name is required to build its URL.")
        return sign_file_url(name)


def signed_url(name: str, ttl: int | None = None) -> str:
    """An absolute-or-relative URL a client may fetch without credentials until it expires."""
    backend = storages["default"]  # the object default_storage wraps, set up if it was not yet
    if isinstance(backend, PrivateFileSystemStorage):
        return sign_file_url(name, ttl)
    if ttl is not None:
        try:
            return str(backend.url(name, expire=ttl))  # django-storages' S3Storage presigns for `ttl`
        except TypeError:
            pass
    return str(backend.url(name))


def absolute(request: HttpRequest | None, url: str) -> str:
    if url.startswith("/"):
        return request.build_absolute_uri(url) if request is not None else settings.SITE_URL.rstrip("/") + url
    return url


def serve_signed_file(request: HttpRequest, name: str) -> HttpResponse:
    if not verify_signature(name, request.GET.get("expires", ""), request.GET.get("signature", "")):
        return HttpResponseForbidden("This file link is invalid or has expired; ask the API for a fresh one.")
    if not default_storage.exists(name):
        raise Http404("No such file.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    inline = content_type in INLINE_TYPES
    response = FileResponse(
        default_storage.open(name, "rb"),
        content_type=content_type if inline else "application/octet-stream",
        as_attachment=not inline,
        filename=name.rsplit("/", 1)[-1],
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=300"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
