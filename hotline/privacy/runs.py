"""The audit row of each purge, export and erasure (`privacy_runs`), and the purge's claim on its day."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from hotline.context import AppContext
from models.privacy import PrivacyRun

_KEYS: dict[Path, bytes] = {}


def _key(ctx: AppContext) -> bytes:
    """A key made once and kept under var/secrets/ (0600), so a digest cannot be reversed by trying every
    phone number; an auditor with the service's files can still compute it for a number they know."""
    path = ctx.config.var_dir / "secrets" / "privacy-digest.key"
    if path not in _KEYS:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(32))
        _KEYS[path] = path.read_text().strip().encode()
    return _KEYS[path]


def subject_digest(ctx: AppContext, kind: str, value: str) -> str:
    """How an audit row names a resident: HMAC-SHA256 of "account:…", "phone:…" or "openid:…"."""
    return hmac.new(_key(ctx), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


async def start(ctx: AppContext, kind: str, *, actor_kind: str, actor_name: str, dry_run: bool = False,
                subject: str | None = None, lock_key: str | None = None) -> int | None:
    """Write the run's row (status running); None when `lock_key` is already held by another run."""
    try:
        async with ctx.sessions.begin() as session:
            run = PrivacyRun(kind=kind, status="running", dry_run=dry_run, actor_kind=actor_kind,
                             actor_name=actor_name[:100], subject_digest=subject, started_at=ctx.clock(),
                             lock_key=lock_key)
            session.add(run)
            await session.flush()
            return run.id
    except IntegrityError:
        return None


async def finish(ctx: AppContext, run_id: int, *, counts: dict[str, Any], cutoffs: dict[str, Any] | None = None,
                 longest_batch_ms: float | None = None, error: str | None = None) -> None:
    """Record the outcome; a failed run gives up its lock so that a later run may try again."""
    values: dict[str, Any] = {"status": "failed" if error else "done", "finished_at": ctx.clock(),
                              "counts": counts, "cutoffs": cutoffs or {}, "longest_batch_ms": longest_batch_ms,
                              "error": error[:2000] if error else None}
    if error:
        values["lock_key"] = None
    async with ctx.sessions.begin() as session:
        await session.execute(update(PrivacyRun).where(PrivacyRun.id == run_id).values(**values))


async def last_purge_cutoffs(ctx: AppContext) -> dict[str, str]:
    """Each pass's cutoff in the last purge that finished (not a dry run): where the next one starts."""
    async with ctx.readers() as session:
        cutoffs = (await session.execute(
            select(PrivacyRun.cutoffs).where(PrivacyRun.kind == "purge", PrivacyRun.status == "done",
                                             PrivacyRun.dry_run.is_(False))
            .order_by(PrivacyRun.id.desc()).limit(1))).scalar_one_or_none()
    return dict(cutoffs or {})


async def recent(ctx: AppContext, kind: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest runs, newest first, for the admin API."""
    stmt = select(PrivacyRun).order_by(PrivacyRun.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(PrivacyRun.kind == kind)
    async with ctx.readers() as session:
        rows = (await session.execute(stmt)).scalars().all()
    return [describe(r) for r in rows]


def describe(run: PrivacyRun) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None
    return {"id": run.id, "kind": run.kind, "status": run.status, "dry_run": run.dry_run,
            "actor_kind": run.actor_kind, "actor_name": run.actor_name, "subject_digest": run.subject_digest,
            "started_at": iso(run.started_at), "finished_at": iso(run.finished_at), "counts": run.counts,
            "longest_batch_ms": run.longest_batch_ms, "error": run.error}
