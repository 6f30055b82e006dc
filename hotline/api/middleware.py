"""Errors as JSON, and who is calling: a staff session cookie or the service token."""
from __future__ import annotations

import hmac
import logging

from aiohttp import web

from hotline.actors import SERVICE
from hotline.api.registry import ACTOR, STAFF_SESSION, ApiError, Handler, ctx_of, json_response
from hotline.auth import sessions as staff_sessions
from hotline.tickets.lifecycle import TicketError

log = logging.getLogger(__name__)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _error(status: int, code: str, message: str, details: object = None) -> web.Response:
    body: dict[str, object] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details  # type: ignore[index]
    return json_response(body, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message, exc.details)
    except TicketError as exc:
        return _error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error(500, "internal_error", "internal error; nothing was changed")


async def authenticate(request: web.Request) -> None:
    """Set the request's ACTOR and STAFF_SESSION, or leave them unset."""
    ctx = ctx_of(request)
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        expected = ctx.config.api.service_token
        if scheme.lower() != "bearer" or not expected or not hmac.compare_digest(token.strip(), expected):
            raise ApiError(401, "invalid_token", "the bearer token is not valid")
        request[ACTOR] = SERVICE
        return
    token = request.cookies.get(staff_sessions.COOKIE)
    if not token:
        return
    async with ctx.readers() as session:
        found = await staff_sessions.resolve(session, token, ctx.clock())
    if found is None:
        return
    staff, sess = found
    request[ACTOR] = staff_sessions.actor_for(staff)
    request[STAFF_SESSION] = sess


def guard(handler: Handler, roles: frozenset[str] | None) -> Handler:
    """Wrap a view with sign-in, role and CSRF checks."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        if roles is None:
            return await handler(request)
        await authenticate(request)
        actor = request.get(ACTOR)
        if actor is None:
            raise ApiError(401, "unauthenticated", "sign in or send a bearer token")
        role = "service" if actor.kind == "service" else actor.role
        if role not in roles:
            raise ApiError(403, "forbidden", f"role {role!r} may not do this")
        sess = request.get(STAFF_SESSION)
        if sess is not None and request.method in UNSAFE:
            sent = request.headers.get("X-CSRF-Token", "")
            if not hmac.compare_digest(sent, sess.csrf_token):
                raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token header")
        return await handler(request)
    return guarded
