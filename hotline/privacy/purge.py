"""The retention purge as a job: once a day at [retention] hour (Beijing time), and on demand from the CLI.

Each run writes its `privacy_runs` row (counts per pass, longest batch). The scheduled run claims
the key "purge:<local day>" in that table first, so in a cluster of service processes sharing one
database exactly one of them purges each day; a run that fails gives the key back and is tried
again an hour later. Its health is a JobRuns ("retention" in /healthz, /readyz and /metrics): down
after three failed runs in a row.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from hotline.context import AppContext
from hotline.health import JobRuns
from hotline.privacy import retention, runs

log = logging.getLogger(__name__)

RETRY_AFTER = dt.timedelta(hours=1)  # after a failed run
LOOK_AGAIN_SECONDS = 300.0  # the loop wakes at least this often (the clock may jump: suspend, NTP)
START_DELAY_SECONDS = 60.0  # the first look comes after the service has settled (and short-lived runs never purge)


@dataclass
class PurgeReport:
    run_id: int | None
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    longest_batch_ms: float = 0.0
    batches: int = 0
    files_removed: int = 0
    longest_by_pass: dict[str, float] = field(default_factory=dict)
    batch_ms: list[float] = field(default_factory=list)
    skipped: bool = False  # another process holds the day's purge

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dry_run": self.dry_run, "counts": self.counts,
                "longest_batch_ms": round(self.longest_batch_ms, 1), "batches": self.batches,
                "files_removed": self.files_removed, "longest_by_pass": self.longest_by_pass,
                "skipped": self.skipped}


async def run_purge(ctx: AppContext, *, dry_run: bool = False, actor_kind: str = "system",
                    actor_name: str = "保存期限清理", lock_key: str | None = None) -> PurgeReport:
    """One purge (or, with dry_run, what it would do), audited in privacy_runs."""
    ctx.config.retention.check()
    now = ctx.clock()
    since = await runs.last_purge_cutoffs(ctx)
    if dry_run:
        counts = await retention.due_counts(ctx, now, since)
        run_id = await runs.start(ctx, "purge", actor_kind=actor_kind, actor_name=actor_name, dry_run=True)
        assert run_id is not None
        await runs.finish(ctx, run_id, counts=counts)
        return PurgeReport(run_id, True, counts)
    run_id = await runs.start(ctx, "purge", actor_kind=actor_kind, actor_name=actor_name, lock_key=lock_key)
    if run_id is None:
        return PurgeReport(None, False, skipped=True)

    def heard(name: str, rows: int) -> None:
        ctx.bus.publish({"type": "retention.purged", "kind": name, "rows": rows})

    try:
        result = await retention.purge(ctx, now, since, heard)
    except Exception as exc:
        await runs.finish(ctx, run_id, counts={}, error=f"{type(exc).__name__}: {exc}")
        raise
    counts = dict(result.counts, files=result.files_removed)
    await runs.finish(ctx, run_id, counts=counts, cutoffs=result.cutoffs, longest_batch_ms=result.longest_batch_ms)
    log.info("retention purge %d: %s; %d batches, longest %.1f ms", run_id,
             ", ".join(f"{k} {v}" for k, v in counts.items()), result.batches, result.longest_batch_ms)
    return PurgeReport(run_id, False, counts, result.longest_batch_ms, result.batches, result.files_removed,
                       result.longest_by_pass, result.batch_ms)


async def tick(ctx: AppContext, job: JobRuns) -> dt.datetime:
    """Purge now if today's run is due and not yet done anywhere; returns when to look again."""
    cfg = ctx.config.retention
    tz = ctx.router.calendar.timezone
    now = ctx.clock()
    local = now.astimezone(tz)
    start_today = dt.datetime.combine(local.date(), dt.time(cfg.hour), tzinfo=tz)
    tomorrow = start_today + dt.timedelta(days=1)
    if local < start_today:
        return start_today.astimezone(dt.UTC)
    failed_before = job.failures
    with job.attempt():
        await run_purge(ctx, lock_key=f"purge:{local.date().isoformat()}")
    if job.failures > failed_before:
        return now + RETRY_AFTER
    return tomorrow.astimezone(dt.UTC)


async def run_scheduler(ctx: AppContext, job: JobRuns) -> None:
    """The daily purge, for as long as the service runs (`job`: its health, from hotline.health.track_job)."""
    await asyncio.sleep(START_DELAY_SECONDS)
    wake = ctx.clock()
    while True:
        if ctx.clock() >= wake:
            wake = await tick(ctx, job)
        seconds = (wake - ctx.clock()).total_seconds()
        await asyncio.sleep(min(max(seconds, 1.0), LOOK_AGAIN_SECONDS))
