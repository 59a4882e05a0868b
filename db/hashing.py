"""sha256 helpers shared by the artifact store and the repository (kept apart so neither pulls in the other)."""

from __future__ import annotations

import hashlib
import re

_HASH_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def is_sha256(value: object) -> bool:
    """True if ``value`` is a lower-case hex sha256 digest."""
    return isinstance(value, str) and _HASH_RE.fullmatch(value) is not None
