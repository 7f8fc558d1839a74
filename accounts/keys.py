"""The API key format: `kizy_<prefix>_<secret><checksum>`.

- `prefix`: 8 base62 characters, public, stored, used to find the row.
- `secret`: 32 base62 characters (~190 bits), never stored; only SHA-256 of the whole key is.
- `checksum`: CRC32 of everything before it, 6 base62 characters, so a mistyped key is rejected
  without touching the database (the scheme GitHub uses for its tokens).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_PREFIX = "kizy"
PREFIX_LENGTH = 8
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_PATTERN = re.compile(
    rf"^{KEY_PREFIX}_(?P<prefix>[0-9A-Za-z]{{{PREFIX_LENGTH}}})"
    rf"_(?P<body>[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}})$"
)


class MalformedKey(ValueError):
    """The string is not a Kizy key (wrong shape or failed checksum)."""


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    full: str

    @property
    def hashed(self) -> str:
        return hash_key(self.full)


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode()), CHECKSUM_LENGTH)


def hash_key(full_key: str) -> str:
    return hashlib.sha256(full_key.encode()).hexdigest()


def generate_key() -> ParsedKey:
    prefix = _random(PREFIX_LENGTH)
    head = f"{KEY_PREFIX}_{prefix}_{_random(SECRET_LENGTH)}"
    return ParsedKey(prefix=prefix, full=head + _checksum(head))


def parse_key(candidate: str) -> ParsedKey:
    """Check shape and checksum; raise MalformedKey with a reason a person can act on."""
    match = KEY_PATTERN.match(candidate.strip())
    if not match:
        raise MalformedKey(f"API keys look like '{KEY_PREFIX}_XXXXXXXX_…' (52 characters); this one does not.")
    full = match.group(0)
    head, checksum = full[:-CHECKSUM_LENGTH], full[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(head), checksum):
        raise MalformedKey("This API key has a typo: its checksum does not match. Copy it again.")
    return ParsedKey(prefix=match.group("prefix"), full=full)
