"""Sign-in, sign-out and who am I."""
from __future__ import annotations

import datetime as dt
import math
import weakref

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hotline.api import client_address
from hotline.api.registry import ALL_STAFF, STAFF_SESSION, ApiError, actor_of, ctx_of, json_response, parse_body, route
from hotline.auth import production
from hotline.auth import sessions as staff_sessions
from hotline.auth.throttle import LoginThrottle

# One throttle per application (tests run many); it lives and dies with the app.
_THROTTLES: weakref.WeakKeyDictionary[web.Application, LoginThrottle] = weakref.WeakKeyDictionary()
LOCKED_MESSAGE = "登录尝试次数过多，请15分钟后再试"


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


def _throttle(request: web.Request) -> LoginThrottle:
    throttle = _THROTTLES.get(request.app)
    if throttle is None:
        throttle = _THROTTLES[request.app] = LoginThrottle()
    return throttle


@route("POST", "/api/auth/login", "Sign in; sets the session cookie and returns the CSRF token. "
       "Too many attempts at one name from one address, or at any names from one address, get 429 "
       "with Retry-After for 15 minutes, whether or not the name exists",
       tag="auth", roles=None, body=Login, errors=(400, 401, 422, 429))
async def login(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await parse_body(request, Login)
    # Behind a trusted proxy that names nobody the address is unknown (None): only the name is counted.
    seen, known = client_address.resolve(request, ctx.config.http.trusted_proxies)
    throttle, address = _throttle(request), seen if known else None
    wait = throttle.begin(body.username, address)
    if wait:
        refused = json_response({"error": {"code": "locked", "message": LOCKED_MESSAGE}}, status=429)
        refused.headers["Retry-After"] = str(math.ceil(wait))
        return refused
    now = ctx.clock()
    try:
        signed = await staff_sessions.sign_in(ctx.sessions, ctx.readers, body.username, body.password, now,
                                              dt.timedelta(hours=ctx.config.http.session_hours))
    except staff_sessions.LoginError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    throttle.succeeded(body.username, address)
    response = json_response({"username": signed.staff.username, "display_name": signed.staff.display_name,
                              "role": signed.staff.role, "csrf_token": signed.csrf_token})
    response.set_cookie(staff_sessions.COOKIE, signed.token, httponly=True, samesite="Strict",
                        secure=production.secure_cookies(ctx.config), path="/",
                        max_age=ctx.config.http.session_hours * 3600)
    return response


@route("POST", "/api/auth/logout", "Sign out", tag="auth", roles=ALL_STAFF, errors=(401, 403))
async def logout(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.sessions.begin() as session:
        await staff_sessions.sign_out(session, request.cookies[staff_sessions.COOKIE])
    response = json_response({"ok": True})
    response.del_cookie(staff_sessions.COOKIE, path="/")
    return response


@route("GET", "/api/auth/me", "The signed-in staff member and the CSRF token", tag="auth", roles=ALL_STAFF,
       errors=(401,))
async def me(request: web.Request) -> web.Response:
    actor = actor_of(request)
    sess = request.get(STAFF_SESSION)
    return json_response({"id": actor.id, "display_name": actor.name, "role": actor.role,
                          "department_id": actor.department_id,
                          "csrf_token": sess.csrf_token if sess else None})
