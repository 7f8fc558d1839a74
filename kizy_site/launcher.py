"""`make up`: migrate, create the demo account and catalog, and serve the whole site from one command.

Starts an embedded Redis (unless `REDIS_URL` is set), the ASGI server (HTTP + websockets) and the
Celery workers, prints the URL and the demo login, and on Ctrl-C, SIGTERM or SIGHUP (terminal closed)
stops every process it started, in order, so nothing is left running.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

PYTHON = sys.executable


class Stopping(Exception):
    """A stop was asked for while Kizy was still starting: start nothing more."""


class Supervisor:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.step: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def run(self, args: list[str]) -> None:
        """Run a setup step (migrate, …) to completion; a stop request ends it and raises Stopping."""
        if self.stopping:
            raise Stopping
        self.step = subprocess.Popen(args)
        try:
            code = self.step.wait()
        finally:
            self.step = None
        if self.stopping:
            raise Stopping
        if code:
            raise subprocess.CalledProcessError(code, args)

    def spawn(self, name: str, args: list[str]) -> None:
        if self.stopping:  # a signal arrived during startup: spawning now would orphan the process
            raise Stopping
        self.children.append((name, subprocess.Popen(args, start_new_session=True)))

    def stop(self, *_: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        print("\nStopping Kizy…", flush=True)
        step = self.step
        if step is not None and step.poll() is None:
            step.terminate()
        for _, child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for name, child in reversed(self.children):
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time; killing it.", flush=True)
                child.kill()
                child.wait()

    def watch(self) -> int:
        while not self.stopping:
            for name, child in self.children:
                code = child.poll()
                if code is not None and not self.stopping:
                    print(f"{name} exited with status {code}; stopping the rest.", flush=True)
                    self.stop()
                    return code or 1
            time.sleep(0.5)
        return 0


# Ctrl-C, `kill`, and closing the terminal (or losing the SSH session). The children run in their own
# sessions, so none of these reach them: the launcher must pass the stop on.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals(supervisor: Supervisor) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.stop()

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def exposure_warning(host: str) -> str | None:
    """`make up` creates a demo superuser with a published password: say so when others can reach it."""
    if host in LOOPBACK or host.startswith("127."):
        return None
    return (
        f"  WARNING: serving on {host}, reachable from other machines, with the demo superuser\n"
        "  demo@kizy.local / kizy-demo. Change its password (Admin → Users) or bind to 127.0.0.1."
    )


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")
    supervisor = Supervisor()
    stop_on_signals(supervisor)

    if not os.environ.get("REDIS_URL"):
        from .embedded_redis import start_embedded_redis, stop_embedded_redis

        os.environ["REDIS_URL"] = start_embedded_redis()
        print(f"Embedded Redis on {os.environ['REDIS_URL']}", flush=True)
    else:
        stop_embedded_redis = None  # type: ignore[assignment]

    port = os.environ.get("PORT", "8000")
    host = os.environ.get("KIZY_BIND", "127.0.0.1")
    try:
        supervisor.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"])
        supervisor.run([PYTHON, "manage.py", "bootstrap_demo"])
        supervisor.run([PYTHON, "manage.py", "load_demo_catalog"])
        supervisor.spawn("web", [PYTHON, "-m", "daphne", "-b", host, "-p", port, "kizy_site.asgi:application"])
        worker = [PYTHON, "-m", "celery", "-A", "kizy_site", "worker", "--loglevel=INFO", "--without-gossip",
                  "--without-mingle"]
        supervisor.spawn("gpu-worker", [*worker, "-Q", "gpu", "--pool=solo", "-n", "gpu@%h"])
        supervisor.spawn("worker", [*worker, "-Q", "default", "--pool=threads", "-c", "4", "-n", "default@%h"])
        supervisor.spawn("beat", [PYTHON, "-m", "celery", "-A", "kizy_site", "beat", "--loglevel=WARNING",
                                  "-s", os.path.join(os.environ.get("KIZY_HOME", ".kizy"), "celerybeat-schedule")])
        if warning := exposure_warning(host):
            print(f"\n{warning}", flush=True)
        print(
            f"\n  Kizy is running on http://{host}:{port}\n"
            "  Demo login: demo@kizy.local / kizy-demo\n"
            "  Press Ctrl-C to stop.\n",
            flush=True,
        )
        return supervisor.watch()
    except Stopping:
        return 0
    finally:
        supervisor.stop()
        if stop_embedded_redis is not None:
            stop_embedded_redis()


if __name__ == "__main__":
    sys.exit(main())
