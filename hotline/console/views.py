"""GET /console: the agents' browser console (one page, plain JavaScript, no build step).

Everything it shows comes from /api and /ws/events; the page itself holds no
data. The policy below forbids inline script and foreign origins, so a
resident's text can only ever be shown as text.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


async def console_page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})


@web.middleware
async def _static_headers(request: web.Request, handler):
    response = await handler(request)
    if request.path.startswith("/console/static/"):
        response.headers.update(HEADERS)
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/", console_page)
    app.router.add_static("/console/static/", STATIC, append_version=False)
    app.middlewares.append(_static_headers)
