"""HMAC-SHA256 over method, path, timestamp and body: how pushes to and from other systems prove who sent them.

The method and path are signed so that a message captured on its way to one endpoint
cannot be replayed at another; each direction has its own secret, so a message we sent
cannot come back to us as one the other side sent.
"""
from __future__ import annotations

import hashlib
import hmac


def canonical(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    """What is signed: `METHOD\\npath\\ntimestamp\\n` then the raw body."""
    return f"{method.upper()}\n{path}\n{timestamp}\n".encode("utf-8", "surrogateescape") + body


def signature(secret: str, method: str, path: str, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 with `secret` over the canonical message."""
    return hmac.new(secret.encode(), canonical(method, path, timestamp, body), hashlib.sha256).hexdigest()


def valid(secret: str, method: str, path: str, timestamp: str, body: bytes, given: str) -> bool:
    """Constant-time check of a pushed signature; any header text (non-ASCII too) is simply not valid."""
    if not secret:
        return False
    expected = signature(secret, method, path, timestamp, body).encode()
    return hmac.compare_digest(expected, given.strip().lower().encode("utf-8", "surrogateescape"))


def digest(given: str) -> str:
    """What the replay guard remembers of a push: the hash of its signature (unique per timestamp and body)."""
    return hashlib.sha256(given.strip().lower().encode("utf-8", "surrogateescape")).hexdigest()
