"""GET /privacy (个人信息保护说明): what residents' data the hotline collects, why, how long, who sees it, rights.

The words are config/privacy.yml; the retention periods are filled in from [retention], so the
page states the periods the purge enforces. Built once at start (a wrong placeholder stops the
start, naming it) and served as prepared bytes: no sign-in, no script, nothing personal.
"""
from __future__ import annotations

import html
import string
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from hotline.context import AppContext

RETENTION_KINDS = ("conversations", "recordings", "call_numbers", "tracker", "nlu_feedback", "read_audit",
                   "closed_tickets")
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'self'"),
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "public, max-age=300",
}
PAGE = web.AppKey("privacy_page", bytes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Section(_Strict):
    heading: str
    items: list[str] = []
    paragraphs: list[str] = []


class PrivacyFile(_Strict):
    title: str
    updated: str
    intro: str
    sections: list[Section]


class PrivacyError(ValueError):
    pass


def load_notice(path: Path) -> PrivacyFile:
    try:
        return PrivacyFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise PrivacyError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PrivacyError(f"{path}: {problems}") from exc


def period(days: int | None) -> str:
    """A retention period in words: 180 → 180天; 0 → kept until erased; unknown → the company's rule."""
    if days is None:
        return "按公司规定的期限保存"
    if days == 0:
        return "长期保存，您可以申请删除"
    return f"保存{days}天"


def retention_words(config: Any) -> dict[str, str]:
    """{kind: words} for every retention kind, from [retention] <kind>_days."""
    retention = getattr(config, "retention", None)
    return {kind: period(getattr(retention, f"{kind}_days", None)) for kind in RETENTION_KINDS}


def _fill(text: str, values: dict[str, str], where: str) -> str:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in values:
            raise PrivacyError(f"config/privacy.yml: {where}: unknown placeholder {{{name}}}; "
                               f"expected one of {', '.join(sorted(values))}")
    return text.format(**values)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def render(notice: PrivacyFile, values: dict[str, str]) -> bytes:
    out = ["<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
           f"<title>{_e(notice.title)}</title><link rel=\"icon\" href=\"data:,\">",
           "<link rel=\"stylesheet\" href=\"/commitments/static/commitments.css\"></head><body><main>",
           f"<h1>{_e(notice.title)}</h1><p class=\"note\">更新于{_e(notice.updated)}</p>",
           f"<p>{_e(_fill(notice.intro, values, 'intro'))}</p>"]
    for i, section in enumerate(notice.sections):
        out.append(f"<section><h2>{_e(section.heading)}</h2>")
        if section.items:
            out.append("<ul>" + "".join(f"<li>{_e(_fill(item, values, f'sections[{i}].items'))}</li>"
                                        for item in section.items) + "</ul>")
        out.extend(f"<p>{_e(_fill(p, values, f'sections[{i}].paragraphs'))}</p>" for p in section.paragraphs)
        out.append("</section>")
    out.append("</main></body></html>")
    return "".join(out).encode("utf-8")


async def privacy_view(request: web.Request) -> web.Response:
    return web.Response(body=request.app[PAGE], content_type="text/html", charset="utf-8", headers=HEADERS)


def setup(app: web.Application, ctx: AppContext) -> None:
    notice = load_notice(ctx.config.path("config/privacy.yml"))
    app[PAGE] = render(notice, retention_words(ctx.config))
    app.router.add_get("/privacy", privacy_view)
