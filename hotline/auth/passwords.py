"""Password hashes with scrypt (a memory-hard KDF from the standard library).

N=2^17, r=8, p=1 (OWASP's recommendation): 128 MiB and about half a second per
hash on this hardware, so it runs in a worker thread, never on the event loop,
and at most KDF_SLOTS at once (a burst of sign-ins must not take gigabytes).
Hashes made with older, cheaper parameters still verify, and `needs_rehash`
tells sign-in to store a new one.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import threading

N, R, P = 2**17, 8, 1
SCHEME = "scrypt"
MAX_N = 2**20  # a stored hash asking for more is refused rather than allowed to take gigabytes
KDF_SLOTS = 2


def _maxmem(n: int, r: int, p: int) -> int:
    """scrypt's memory, 128·r·(n + p + 2) bytes, with room to spare (OpenSSL's default cap is 32 MiB)."""
    return 128 * r * (n + p + 2) + 1024 * 1024


_slots = threading.BoundedSemaphore(KDF_SLOTS)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _slots:
        return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                              maxmem=_maxmem(n, r, p))


def hash_password_sync(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P, 32)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password_sync(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME or int(n) > MAX_N or int(r) > 32 or int(p) > 16:
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(stored: str) -> bool:
    """True for a hash made with other parameters than today's (sign-in then stores a new one)."""
    parts = stored.split("$")
    return len(parts) != 6 or parts[:4] != [SCHEME, str(N), str(R), str(P)]


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password_sync, password, stored)


# Verified against when the username is unknown, so timing does not reveal it: today's parameters and a
# random digest no password gives (made without running the KDF, so importing this costs nothing).
DUMMY_HASH = f"{SCHEME}${N}${R}${P}${_b64(secrets.token_bytes(16))}${_b64(secrets.token_bytes(32))}"
