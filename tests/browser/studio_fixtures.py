"""The real Kizy stack for the studio's browser tests.

daphne (HTTP + websockets) and a Celery worker run as subprocesses, the way `make up` runs them,
against their own database (SQLite in a temporary KIZY_HOME, or a separate PostgreSQL database when
DATABASE_URL is set), and on the test session's Redis server (a database index of its own, so the
worker never takes another test's tasks). The database is prepared with `migrate`, `bootstrap_demo`
and `load_demo_catalog`, so the demo account and the tiny random-weight demo models are there.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_EMAIL, DEMO_PASSWORD = "demo@kizy.local", "kizy-demo"
BROWSER_DATABASE = "test_browser_studio"
STACK_REDIS_DB = 11


@dataclass
class Stack:
    base_url: str
    home: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str, lines: int = 60) -> str:
        path = self.home / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def logs(self) -> str:
        return "\n".join(f"--- {name}.log ---\n{self.log(name)}" for name in self.processes)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.logs()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_url_for_stack(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{STACK_REDIS_DB}", parts.query, parts.fragment))


def _postgres_database(url: str) -> str:
    """A fresh database beside the test session's one, on the same server; returns its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{BROWSER_DATABASE}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{BROWSER_DATABASE}"')
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{BROWSER_DATABASE}", parts.query, parts.fragment))


def _drop_postgres_database(url: str) -> None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{BROWSER_DATABASE}" WITH (FORCE)')
    except psycopg.Error:
        pass


def _manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env,  # noqa: S603
                            capture_output=True, text=True, timeout=600)
    if result.returncode:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def studio_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from django.conf import settings

    home = tmp_path_factory.mktemp("kizy-browser-studio")
    port = _free_port()
    env = {
        **os.environ,
        "KIZY_HOME": str(home),
        "REDIS_URL": _redis_url_for_stack(settings.REDIS_URL),
        "KIZY_CHANNEL_PREFIX": "kizy-browser-studio",
        # The session's (temporary) model store: tiny demo models generated once serve every stack.
        "KIZY_MODEL_STORE": str(settings.KIZY_MODEL_STORE),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PORT": str(port),
        "KIZY_SITE_URL": f"http://127.0.0.1:{port}",
        "DJANGO_SETTINGS_MODULE": "kizy_site.settings",
        "DEBUG": "true",
        "KIZY_ENV": "development",
        "PYTHONUNBUFFERED": "1",
    }
    database_url = os.environ.get("DATABASE_URL", "")
    postgres_url = database_url if database_url.startswith(("postgres://", "postgresql://")) else ""
    if postgres_url:
        env["DATABASE_URL"] = _postgres_database(postgres_url)
    else:
        env.pop("DATABASE_URL", None)  # SQLite in the stack's own KIZY_HOME
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "bootstrap_demo")
    _manage(env, "load_demo_catalog")

    stack = Stack(base_url=f"http://127.0.0.1:{port}", home=home, env=env)
    commands = {
        "web": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                "kizy_site.asgi:application"],
        "worker": [sys.executable, "-m", "celery", "-A", "kizy_site", "worker", "-Q", "gpu,default",
                   "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "-n", f"studio-browser-{port}@%h", "--loglevel=INFO"],
    }
    try:
        for name, command in commands.items():
            log = (home / f"{name}.log").open("wb")
            stack.processes[name] = subprocess.Popen(command, cwd=REPO, env=env, stdout=log,  # noqa: S603
                                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            stack.check_alive()
            try:
                if httpx.get(f"{stack.base_url}/healthz", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the web server did not answer within 90 s\n{stack.logs()}")
            time.sleep(0.3)
        deadline = time.monotonic() + 120
        while "ready." not in (home / "worker.log").read_text(errors="replace"):
            stack.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"the Celery worker did not start within 120 s\n{stack.logs()}")
            time.sleep(0.3)
        yield stack
    finally:
        for process in reversed(list(stack.processes.values())):
            _stop(process)
        if postgres_url:
            _drop_postgres_database(postgres_url)


def log_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", DEMO_EMAIL)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form[data-testid=login-form] button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login" not in url)


@pytest.fixture
def studio_page(studio_stack: Stack, chromium_browser: Any) -> Iterator[Any]:
    """A logged-in page on the stack (the demo account). Like conftest's `open_page`, it fails the test
    on a Content Security Policy violation or an uncaught script error."""
    context = chromium_browser.new_context(base_url=studio_stack.base_url,
                                           viewport={"width": 1440, "height": 1000}, color_scheme="light")
    context.set_default_timeout(15_000)
    context.add_init_script(RECORD_PROGRESS)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: problems.append(f"{page.url}: script error {error}"))
    log_in(page, studio_stack.base_url)
    yield page
    context.close()
    assert not problems, "The browser reported problems:\n" + "\n".join(problems)


# Records every value the studio's progress bar takes, from the page itself.
RECORD_PROGRESS = """
window.__progress = [];
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("run-progress");
  if (!bar) return;
  new MutationObserver(() => window.__progress.push(Number(bar.value)))
    .observe(bar, { attributes: true, attributeFilter: ["value"] });
});
"""
