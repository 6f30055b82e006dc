"""Reports (报表), the public service-commitment page and the Prometheus metrics.

`setup(app, ctx)` adds /commitments and /metrics; the report API registers itself in
hotline/api/reports.py like every other route.
"""
from __future__ import annotations

from aiohttp import web

from hotline.context import AppContext


def setup(app: web.Application, ctx: AppContext) -> None:
    from hotline.reports import commitments, metrics
    commitments.setup(app, ctx)
    metrics.setup(app, ctx)
