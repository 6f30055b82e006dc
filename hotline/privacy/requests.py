"""A resident's request to see or erase their data: the one door the API and the CLI both use.

Each request writes its `privacy_runs` row (who asked, a digest of whose data, what was handed over
or removed); an export also writes its read-audit row (查阅记录) in the same commit as that row, so
no copy leaves the store unrecorded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.actors import Actor
from hotline.context import AppContext
from hotline.privacy import erase, export, runs, subjects


@dataclass
class ExportResult:
    data: dict[str, Any]
    run_id: int

    @property
    def counts(self) -> dict[str, int]:
        return {key: len(self.data.get(key, [])) for key in export.SECTIONS}


async def export_resident(ctx: AppContext, kind: str, value: str, actor: Actor, endpoint: str) -> ExportResult:
    value = subjects.normalise(kind, value)
    async with ctx.readers() as session:
        resident = await subjects.find(session, kind, value)
        data = await export.collect(session, resident, ctx.clock())
    result = ExportResult(data, 0)
    run_id = await runs.start(ctx, "export", actor_kind=actor.kind, actor_name=actor.name,
                              subject=runs.subject_digest(ctx, kind, value))
    assert run_id is not None
    result.run_id = run_id
    await runs.finish(ctx, run_id, counts=result.counts)
    await _audit_read(ctx, actor, endpoint, kind, value, sum(result.counts.values()))
    return result


async def _audit_read(ctx: AppContext, actor: Actor, endpoint: str, kind: str, value: str, hits: int) -> None:
    try:
        from hotline.audit.reads import Subject, audit_reads
    except ImportError:  # a build without the read audit
        return
    subject = Subject(account_number=value if kind == "account" else None, phone=value if kind == "phone" else None,
                      openid=value if kind == "openid" else None)
    await audit_reads(ctx, actor, endpoint, [subject] * max(hits, 1), reason="个人信息副本导出")


async def erase_resident(ctx: AppContext, kind: str, value: str, actor: Actor) -> dict[str, Any]:
    """Erase the resident; the audit row is written first (running) and completed with the counts."""
    value = subjects.normalise(kind, value)
    run_id = await runs.start(ctx, "erase", actor_kind=actor.kind, actor_name=actor.name,
                              subject=runs.subject_digest(ctx, kind, value))
    assert run_id is not None
    try:
        async with ctx.readers() as session:
            resident = await subjects.find(session, kind, value)
        done = await erase.erase(ctx, resident)
    except Exception as exc:
        await runs.finish(ctx, run_id, counts={}, error=f"{type(exc).__name__}: {exc}")
        raise
    counts = dict(done.counts, swept=sum(done.swept.values()))
    await runs.finish(ctx, run_id, counts=counts)
    return {"run_id": run_id, "found": resident.found, "counts": counts, "swept": done.swept,
            "kept": ["accounts", "bills", "payments", "tickets' business facts"]}
