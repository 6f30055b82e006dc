"""What the service and the bot processes it starts share: tokens, identity proofs, dying with the parent.

Plain standard library, because it is imported by the service (Python 3.11, .venv) and by the
Rasa and action server entry points (.venv-rasa).

Identity: the service sends a fresh nonce, the process answers with its pid and an HMAC of the
nonce and pid under the token it was given. Only a process that knows the token can answer, and the
token itself never travels to whatever happens to listen on the port.
"""
from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
import signal
import sys

RASA_TOKEN_ENV = "HOTLINE_BOT_RASA_TOKEN"  # Rasa's HTTP API token (?token=)
SERVICE_TOKEN_ENV = "HOTLINE_API_SERVICE_TOKEN"  # the action server's token (Authorization: Bearer)
PARENT_PID_ENV = "HOTLINE_BOT_PARENT_PID"  # the service that started us; we die with it
RASA_IDENTITY_PATH = "/webhooks/rest/identity"
ACTIONS_IDENTITY_PATH = "/hotline/identity"
PR_SET_PDEATHSIG = 1


def proof(token: str, role: str, nonce: str, pid: int) -> str:
    """The answer to an identity challenge: only the token's holder can compute it."""
    message = f"{role}:{nonce}:{pid}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def verify(token: str, role: str, nonce: str, pid: int, answer: str) -> bool:
    return bool(token) and hmac.compare_digest(proof(token, role, nonce, pid), str(answer))


def token_matches(expected: str, provided: str | None) -> bool:
    """Constant-time comparison; an empty expected token matches nothing."""
    return bool(expected) and provided is not None and hmac.compare_digest(expected.encode(), provided.encode())


def bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    return None


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL us when the service dies, even by SIGKILL (Linux PR_SET_PDEATHSIG).

    Done first thing in the child rather than in a preexec_fn, which would run Python between fork
    and exec in the multi-threaded service. The parent may have died before this call: then our
    parent pid is no longer the one the service wrote into our environment, and we leave.
    """
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(expected):
        os._exit(70)
