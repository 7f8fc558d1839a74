"""Where Kizy keeps its local state in embedded mode (database, media, models, secret key)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def kizy_home() -> Path:
    home = Path(os.environ.get("KIZY_HOME") or REPO_ROOT / ".kizy").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def persisted_secret_key(home: Path) -> str:
    """Generate the secret key once and keep it, so sessions survive restarts."""
    path = home / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()
