"""Signed survey links: a resident outside WeChat's 48-hour window gets a template message that opens
the survey for that ticket at /survey/{token}.

The token names the task and an expiry and carries an HMAC-SHA256 of both with
a secret only the service knows: nothing in it can be guessed or changed, and
it stops working when it expires or once the survey is answered.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import html
import os
import secrets
from pathlib import Path

from aiohttp import web

from hotline.actors import RESIDENT
from hotline.callbacks import tasks as callback_tasks
from hotline.callbacks.answers import ANSWERS
from hotline.context import AppContext
from models import CallbackTask, Ticket

ANSWER_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}
HEADERS = {
    "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
}
CSS = Path(__file__).resolve().parent / "survey.css"


_KEYS: dict[Path, bytes] = {}


def _secret(ctx: AppContext) -> bytes:
    """[callback] link_secret, or a key made once and kept under var/ (set link_secret for several hosts)."""
    configured = ctx.config.callback.link_secret
    if configured:
        return configured.encode()
    path = ctx.config.var_dir / "secrets" / "survey-link.key"
    if path in _KEYS:
        return _KEYS[path]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    _KEYS[path] = path.read_text().strip().encode()
    return _KEYS[path]


def _mac(ctx: AppContext, body: str) -> str:
    digest = hmac.new(_secret(ctx), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(ctx: AppContext, task_id: int, now: dt.datetime) -> str:
    expires = int((now + dt.timedelta(hours=ctx.config.callback.link_valid_hours)).timestamp())
    body = f"{task_id}.{expires}"
    return f"{body}.{_mac(ctx, body)}"


def verify(ctx: AppContext, token: str, now: dt.datetime) -> int | None:
    """The task id of a genuine, unexpired token; None otherwise."""
    try:
        task_id, expires, mac = token.split(".")
        # As bytes: a non-ASCII str would make compare_digest raise TypeError (a 500), not just differ.
        ok = hmac.compare_digest(mac.encode("utf-8", "surrogateescape"), _mac(ctx, f"{task_id}.{expires}").encode())
        return int(task_id) if ok and now.timestamp() < int(expires) else None
    except ValueError:
        return None


def survey_url(ctx: AppContext, task_id: int, now: dt.datetime) -> str:
    return f"{ctx.config.public_url}/survey/{sign(ctx, task_id, now)}"


def _page(ctx: AppContext, body: str, status: int = 200) -> web.Response:
    title = html.escape(ctx.messages("callback.page_title"))
    return web.Response(status=status, headers=HEADERS, text=(
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f'<link rel="stylesheet" href="/survey/static/survey.css"></head>'
        f'<body><header>{title}</header><main>{body}</main></body></html>'))


async def _task(ctx: AppContext, request: web.Request) -> tuple[CallbackTask, Ticket] | None:
    task_id = verify(ctx, request.match_info["token"], ctx.clock())
    if task_id is None:
        return None
    async with ctx.readers() as session:
        task = await session.get(CallbackTask, task_id)
        ticket = await session.get(Ticket, task.ticket_id) if task else None
    return (task, ticket) if task is not None and ticket is not None else None


def setup(app: web.Application, ctx: AppContext) -> None:
    _secret(ctx)  # read (or made) now, at start: never file I/O on the event loop later
    async def show(request: web.Request) -> web.Response:
        found = await _task(ctx, request)
        if found is None:
            return _page(ctx, f"<p>{html.escape(ctx.messages('callback.page_invalid'))}</p>", 403)
        task, ticket = found
        if task.state not in callback_tasks.OPEN_STATES:
            return _page(ctx, f"<p>{html.escape(ctx.messages('callback.already', ticket=ticket.number))}</p>")
        async with ctx.readers() as session:
            done = await callback_tasks.resolution_note(session, ticket.id)
        buttons = "".join(f'<button name="answer" value="{a}">{ANSWER_LABELS[a]}</button>' for a in ANSWERS)
        return _page(ctx, (
            f"<p>{html.escape(ctx.messages('callback.page_question', ticket=ticket.number))}</p>"
            f'<p class="done">{html.escape(done)}</p>'
            f'<form method="post">{buttons}</form>'))

    async def answer(request: web.Request) -> web.Response:
        found = await _task(ctx, request)
        if found is None:
            return _page(ctx, f"<p>{html.escape(ctx.messages('callback.page_invalid'))}</p>", 403)
        chosen = str((await request.post()).get("answer", ""))
        if chosen not in ANSWERS:
            return _page(ctx, "<p>请选择满意、基本满意或不满意。</p>", 400)
        now = ctx.clock()
        async with ctx.sessions.begin() as session:
            task = await session.get(CallbackTask, found[0].id)
            assert task is not None
            if task.state not in callback_tasks.OPEN_STATES:
                text = ctx.messages("callback.already", ticket=found[1].number)
                return _page(ctx, f"<p>{html.escape(text)}</p>", 409)
            callback_tasks.add_attempt(task, "link", now, chosen)
            await callback_tasks.record_answer(session, ctx.router, task, chosen, RESIDENT, now)
        return _page(ctx, f"<p>{html.escape(ctx.messages('callback.page_done'))}</p>")

    async def css(_: web.Request) -> web.FileResponse:
        return web.FileResponse(CSS, headers={"Content-Type": "text/css; charset=utf-8",
                                              "X-Content-Type-Options": "nosniff"})

    app.router.add_get("/survey/static/survey.css", css)
    app.router.add_get("/survey/{token}", show)
    app.router.add_post("/survey/{token}", answer)
