"""Embedded Redis and the launcher leave no process behind: on stop, on SIGTERM, even mid-startup."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest
from django.conf import settings

from kizy_site.launcher import Stopping, Supervisor, exposure_warning

REPO = Path(settings.BASE_DIR)


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def processes_of(home: Path) -> list[psutil.Process]:
    """Every live process started for this KIZY_HOME, including daemonized ones (redis-server)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("KIZY_HOME") == str(home) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of someone running Kizy by hand: no REDIS_URL, no test settings."""
    dropped = ("KIZY_", "REDIS_URL", "DATABASE_URL", "CELERY_", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(KIZY_HOME=str(home), PYTHONUNBUFFERED="1", **extra)
    return env


# --- embedded Redis -----------------------------------------------------------------------------

OWNER = textwrap.dedent(
    """
    import sys, time
    import redis
    from kizy_site import embedded_redis
    url = embedded_redis.start_embedded_redis()
    assert redis.Redis.from_url(url).ping()
    print(embedded_redis._server.pid, url, flush=True)
    if sys.argv[1] == "stop":
        embedded_redis.stop_embedded_redis()
        print("stopped", flush=True)
    time.sleep(60)
    """
)


def start_owner(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], int, str]:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", OWNER, mode],
        cwd=REPO,
        env=clean_env(tmp_path),
        text=True,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    pid, url = process.stdout.readline().split()
    return process, int(pid), url


def test_stopping_embedded_redis_leaves_no_redis_server(tmp_path: Path) -> None:
    process, redis_pid, url = start_owner(tmp_path, "stop")
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "stopped"
        assert gone(redis_pid)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    finally:
        process.kill()
        process.wait()


def test_sigterm_to_the_owner_stops_embedded_redis(tmp_path: Path) -> None:
    process, redis_pid, _ = start_owner(tmp_path, "keep")
    assert psutil.Process(redis_pid).is_running()
    assert psutil.Process(redis_pid).ppid() != process.pid  # daemonized: only the owner can stop it
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 128 + signal.SIGTERM
    assert gone(redis_pid), "redis-server outlived its owner"


def test_embedded_redis_listens_on_loopback_only(tmp_path: Path) -> None:
    """Checked on an embedded server of its own, so it runs in CI too (where REDIS_URL is set)."""
    process, redis_pid, _ = start_owner(tmp_path, "keep")
    try:
        listening = {
            conn.laddr.ip
            for conn in psutil.Process(redis_pid).net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        assert gone(redis_pid)


# --- the launcher's Supervisor ------------------------------------------------------------------

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_the_supervisor_stops_its_children() -> None:
    supervisor = Supervisor()
    supervisor.spawn("one", SLEEP)
    supervisor.spawn("two", SLEEP)
    pids = [child.pid for _, child in supervisor.children]
    supervisor.stop()
    assert all(child.poll() is not None for _, child in supervisor.children)
    assert all(gone(pid, timeout=1) for pid in pids)


def test_when_a_child_dies_the_supervisor_stops_the_rest_and_reports_its_status() -> None:
    supervisor = Supervisor()
    supervisor.spawn("long", SLEEP)
    supervisor.spawn("crash", [sys.executable, "-c", "raise SystemExit(3)"])
    assert supervisor.watch() == 3
    assert supervisor.children[0][1].poll() is not None


def test_after_a_stop_request_nothing_more_is_started() -> None:
    supervisor = Supervisor()
    supervisor.stop()
    with pytest.raises(Stopping):
        supervisor.spawn("late", SLEEP)
    with pytest.raises(Stopping):
        supervisor.run(SLEEP)
    assert supervisor.children == []


STOPPED_BY_SIGNAL = textwrap.dedent(
    """
    import sys, time
    from kizy_site.launcher import Supervisor, stop_on_signals
    supervisor = Supervisor()
    stop_on_signals(supervisor)
    supervisor.spawn("web", [sys.executable, "-c", "import time; time.sleep(60)"])
    print(supervisor.children[0][1].pid, flush=True)
    sys.exit(supervisor.watch())
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_ctrl_c_sigterm_and_a_closed_terminal_stop_the_children(tmp_path: Path, signum: signal.Signals) -> None:
    """The launcher's own signal handling; the whole `make up` is tested with SIGTERM below."""
    launcher = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", STOPPED_BY_SIGNAL], cwd=REPO, env=clean_env(tmp_path), text=True,
        stdout=subprocess.PIPE,
    )
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        assert psutil.Process(child).is_running()
        launcher.send_signal(signum)
        assert launcher.wait(timeout=20) == 0  # handled: a default action would end it by the signal
        assert gone(child), f"the child outlived a {signum.name} to the launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.1.1"])
def test_a_loopback_bind_needs_no_warning(host: str) -> None:
    assert exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])  # noqa: S104
def test_a_bind_others_can_reach_warns_about_the_demo_login(host: str) -> None:
    warning = exposure_warning(host)
    assert warning is not None
    assert f"serving on {host}, reachable from other machines" in warning
    assert "demo@kizy.local / kizy-demo" in warning


# --- the whole launcher (`make up`) -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    log = (tmp_path / "launcher.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "kizy_site.launcher"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=clean_env(tmp_path / "home", PORT=str(port)),
    )


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "launcher.log").read_text(errors="replace")[-5000:]


def embedded_redis_of(tmp_path: Path) -> psutil.Process:
    """redis-server rewrites its process title over its environment, so find it by its port."""
    match = re.search(
        r"Embedded Redis on redis://127\.0\.0\.1:(\d+)/", (tmp_path / "launcher.log").read_text()
    )
    assert match, log_of(tmp_path)
    port = int(match.group(1))
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return psutil.Process(conn.pid)
    raise AssertionError(f"nothing listens on the embedded Redis port {port}")


def clean_up(launcher: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """After a failure, kill whatever this test started, so one failure does not leak processes."""
    if launcher.poll() is None:
        launcher.kill()
        launcher.wait()
    leftovers = processes_of(tmp_path / "home")
    with contextlib.suppress(AssertionError):
        leftovers.append(embedded_redis_of(tmp_path))
    for process in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.mark.slow
def test_the_launcher_serves_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    launcher = launch(tmp_path, port)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert launcher.poll() is None, log_of(tmp_path)
            assert time.monotonic() < deadline, "no healthy /healthz within 120 s\n" + log_of(tmp_path)
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert response.json()["checks"]["broker"]["status"] == "ok"

        started = {
            p.pid: " ".join(p.cmdline()) for p in psutil.Process(launcher.pid).children(recursive=True)
        }
        started |= {
            p.pid: " ".join(p.cmdline()) for p in processes_of(tmp_path / "home") if p.pid != launcher.pid
        }
        redis_server = embedded_redis_of(tmp_path)
        started[redis_server.pid] = " ".join(redis_server.cmdline())
        commands = " | ".join(started.values())
        assert "daphne" in commands and "celery" in commands and "redis-server" in commands, commands

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=45) == 0, log_of(tmp_path)
        assert "Stopping Kizy" in log_of(tmp_path)
        left = {pid: command for pid, command in started.items() if not gone(pid, timeout=5)}
        assert left == {}, f"still running after the launcher exited: {left}"
        assert processes_of(tmp_path / "home") == []
    finally:
        clean_up(launcher, tmp_path)


@pytest.mark.slow
def test_sigterm_during_startup_starts_nothing_more(tmp_path: Path) -> None:
    launcher = launch(tmp_path, free_port())
    try:
        deadline = time.monotonic() + 60
        migrating = False
        while not migrating and time.monotonic() < deadline and launcher.poll() is None:
            with contextlib.suppress(psutil.Error):
                migrating = any("migrate" in p.cmdline() for p in psutil.Process(launcher.pid).children())
            time.sleep(0.02)
        assert migrating, "never saw the migrate step\n" + log_of(tmp_path)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=45) == 0, log_of(tmp_path)
        time.sleep(1)  # an orphaned daphne or celery would still be starting now
        assert processes_of(tmp_path / "home") == [], log_of(tmp_path)
        with pytest.raises(AssertionError, match="nothing listens"):
            embedded_redis_of(tmp_path)
    finally:
        clean_up(launcher, tmp_path)
