"""HMAC-SHA256 over timestamp + "." + body: how pushes to and from other systems prove who sent them."""
from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 with the shared secret over `timestamp.body`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def valid(secret: str, timestamp: str, body: bytes, given: str) -> bool:
    """Constant-time check of a pushed signature."""
    return bool(secret) and hmac.compare_digest(signature(secret, timestamp, body), given.strip().lower())


def digest(given: str) -> str:
    """What the replay guard remembers of a push: the hash of its signature (unique per timestamp and body)."""
    return hashlib.sha256(given.strip().lower().encode()).hexdigest()
