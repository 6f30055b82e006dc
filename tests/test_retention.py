"""Retention (保存期限): what is due per kind goes, in short batches, audited, counted and health-checked."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from hotline.context import AppContext
from hotline.health import track_job
from hotline.privacy import purge as purge_job
from hotline.privacy import retention
from models import (
    Call,
    Conversation,
    Department,
    Message,
    PrivacyRun,
    ReadAudit,
    Ticket,
    TicketAttachment,
    TicketEvent,
)
from models.nlu_feedback import NluFeedback
from tests.conftest import SERVICE

ROOT = Path(__file__).resolve().parent.parent
OLD_WORDS = "去年三月我家门口的水管爆了请派人来修"
NEW_WORDS = "今天早上水压很低请帮忙看看"


async def _seed(ctx: AppContext, now: dt.datetime) -> dict[str, int]:
    """One of each kind just past its limit (defaults), and one of each well within it."""
    def ago(days: float) -> dt.datetime:
        return now - dt.timedelta(days=days)

    recording = ctx.config.var_dir / "recordings" / "old" / "call-1.wav"
    recording.parent.mkdir(parents=True, exist_ok=True)
    recording.write_bytes(b"RIFF-old-voicemail")
    ids: dict[str, int] = {}
    async with ctx.sessions.begin() as session:
        dept = (await session.execute(select(Department.id).limit(1))).scalar_one()
        old_conv = Conversation(channel="wechat", external_user="o-old-resident", created_at=ago(200),
                                updated_at=ago(190), status="closed", slots={"phone": "13811112222"})
        new_conv = Conversation(channel="wechat", external_user="o-new-resident", created_at=ago(3), updated_at=ago(3))
        session.add_all([old_conv, new_conv])
        await session.flush()
        session.add_all([
            Message(conversation_id=old_conv.id, channel="wechat", channel_message_id="m-old", direction="in",
                    sender_kind="resident", text=OLD_WORDS, created_at=ago(200)),
            Message(conversation_id=new_conv.id, channel="wechat", channel_message_id="m-new", direction="in",
                    sender_kind="resident", text=NEW_WORDS, created_at=ago(3)),
        ])
        voicemail = Call(sip_call_id="c-100", caller="13811112222", started_at=ago(100), outcome="voicemail",
                         recording_path="recordings/old/call-1.wav", digits="3")
        old_call = Call(sip_call_id="c-400", caller="13833334444", started_at=ago(400), outcome="self_served",
                        digits="13100000001#", account_number="3100000001", menu_path=["主菜单", "余额查询"])
        session.add_all([voicemail, old_call])
        old_ticket = Ticket(number="GD20221001-0001", category="repair", business_type="burst_main", channel="phone",
                            status="closed", contact_name="张先生", contact_phone="13855556666", address="中山东路1号",
                            description=OLD_WORDS, department_id=dept, area="城东片区", account_number="3100000001",
                            created_at=ago(1200), response_due_at=ago(1199), resolution_due_at=ago(1198),
                            resolved_at=ago(1199), closed_at=ago(1190), satisfaction=5)
        new_ticket = Ticket(number="GD20260901-0001", category="repair", business_type="low_pressure",
                            channel="wechat", status="closed", contact_name="李女士", contact_phone="13877778888",
                            description=NEW_WORDS, department_id=dept, area="城西片区", created_at=ago(30),
                            response_due_at=ago(29), resolution_due_at=ago(28), closed_at=ago(20))
        session.add_all([old_ticket, new_ticket])
        await session.flush()
        session.add_all([
            TicketEvent(ticket_id=old_ticket.id, action="create", actor_kind="resident", note=OLD_WORDS, at=ago(1200)),
            TicketAttachment(ticket_id=old_ticket.id, kind="voice", uri=f"call-recording:{voicemail.id}"),
            NluFeedback(conversation_id=old_conv.id, text=OLD_WORDS, correct_intent="repair", created_at=ago(200)),
            NluFeedback(conversation_id=new_conv.id, text=NEW_WORDS, correct_intent="repair", created_at=ago(3)),
            ReadAudit(at=ago(1100), staff_name="agent1", role="agent", endpoint="GET /api/customers/{n}",
                      phone="13855556666"),
            ReadAudit(at=ago(10), staff_name="agent1", role="agent", endpoint="GET /api/customers/{n}",
                      phone="13877778888"),
        ])
        await session.flush()
        ids.update(old_conv=old_conv.id, new_conv=new_conv.id, voicemail=voicemail.id, old_call=old_call.id,
                   old_ticket=old_ticket.id, new_ticket=new_ticket.id)
    return ids


async def test_a_purge_removes_what_is_due_keeps_business_facts_and_counts_it(
        ctx: AppContext, client: TestClient) -> None:
    ids = await _seed(ctx, ctx.clock())
    recording = ctx.config.var_dir / "recordings" / "old" / "call-1.wav"

    dry = await purge_job.run_purge(ctx, dry_run=True)
    assert dry.counts == {"conversations": 1, "messages": 1, "recordings": 1, "calls": 1, "outbound_jobs": 0,
                          "nlu_feedback": 1, "tickets": 1, "account_lookups": 0, "proof_attempts": 0,
                          "read_audit": 1, "tracker_events": 0}
    assert recording.exists()  # a dry run changes nothing

    report = await purge_job.run_purge(ctx)
    assert report.counts["conversations"] == 1 and report.counts["tickets"] == 1 and report.counts["files"] == 1
    assert not recording.exists()
    async with ctx.readers() as session:
        texts = dict((await session.execute(select(Message.conversation_id, Message.text))).all())
        assert texts == {ids["old_conv"]: "", ids["new_conv"]: NEW_WORDS}
        old_conv = await session.get(Conversation, ids["old_conv"])
        assert old_conv is not None and old_conv.external_user == "" and old_conv.slots == {}
        voicemail, old_call = await session.get(Call, ids["voicemail"]), await session.get(Call, ids["old_call"])
        assert voicemail is not None and voicemail.recording_path is None
        assert voicemail.caller == "13811112222"  # its number is kept for a year, its recording 90 days
        assert old_call is not None and (old_call.caller, old_call.digits, old_call.account_number) == ("", "", None)
        assert (old_call.outcome, old_call.menu_path) == ("self_served", ["主菜单", "余额查询"])
        old, new = await session.get(Ticket, ids["old_ticket"]), await session.get(Ticket, ids["new_ticket"])
        assert old is not None and new is not None
        assert (old.contact_name, old.contact_phone, old.address, old.description, old.account_number) == (
            "", None, "", "", None)
        # the business facts stay: category, business type, department, times, outcome, area
        assert (old.category, old.business_type, old.area, old.satisfaction, old.status) == (
            "repair", "burst_main", "城东片区", 5, "closed")
        assert old.closed_at is not None and old.department_id
        assert (new.contact_phone, new.description) == ("13877778888", NEW_WORDS)
        notes = (await session.execute(select(TicketEvent.note).where(TicketEvent.ticket_id == old.id))).scalars()
        assert list(notes) == [""]
        assert (await session.execute(select(func.count()).select_from(TicketAttachment))).scalar_one() == 0
        assert list((await session.execute(select(NluFeedback.text))).scalars()) == [NEW_WORDS]
        assert list((await session.execute(select(ReadAudit.phone))).scalars()) == ["13877778888"]
        run = (await session.execute(select(PrivacyRun).where(PrivacyRun.id == report.run_id))).scalar_one()
        assert run.kind == "purge" and run.status == "done" and run.counts["tickets"] == 1
        assert run.longest_batch_ms is not None and run.cutoffs["tickets"]

    # /metrics counts what went, by pass
    metrics = await (await client.get("/metrics")).text()
    assert 'hotline_retention_purged_rows_total{kind="tickets"} 1.0' in metrics
    assert 'hotline_retention_purged_rows_total{kind="conversations"} 1.0' in metrics

    # The next purge starts where this one ended and finds nothing more.
    again = await purge_job.run_purge(ctx)
    assert sum(again.counts.values()) == 0


async def test_the_purge_works_in_short_batches(ctx: AppContext) -> None:
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = Conversation(channel="webchat", external_user="web-1", created_at=now, updated_at=now)
        session.add(conv)
        await session.flush()
        session.add_all([Message(conversation_id=conv.id, channel="webchat", direction="in", sender_kind="resident",
                                 text=f"第{i}条旧消息", created_at=now - dt.timedelta(days=181, minutes=i))
                         for i in range(7)])
    ctx.config.retention.batch_size = 2
    report = await purge_job.run_purge(ctx)
    assert report.counts["messages"] == 7 and report.batches >= 4  # 7 rows, 2 at a time
    assert 0 < report.longest_batch_ms < 1000


async def test_only_one_process_purges_each_day(ctx: AppContext) -> None:
    first, second = await asyncio.gather(purge_job.run_purge(ctx, lock_key="purge:2026-09-24"),
                                         purge_job.run_purge(ctx, lock_key="purge:2026-09-24"))
    assert sorted([first.skipped, second.skipped]) == [False, True]


async def test_a_purge_that_keeps_failing_shows_in_healthz(ctx: AppContext, client: TestClient,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    job = track_job(ctx, "retention")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(retention, "purge", broken)
    for attempt in range(3):
        wake = await purge_job.tick(ctx, job)
        assert wake == ctx.clock() + purge_job.RETRY_AFTER  # a failed run is tried again in an hour
        health = await (await client.get("/healthz")).json()
        assert health["components"]["retention"]["up"] is (attempt < 2)
    assert health["status"] == "degraded" and "retention" in health["down"]
    assert "disk full" in health["components"]["retention"]["last_error"]
    async with ctx.readers() as session:
        failed = (await session.execute(select(PrivacyRun.status, PrivacyRun.lock_key))).all()
    assert failed == [("failed", None)] * 3  # each gave its day back

    monkeypatch.undo()
    await purge_job.tick(ctx, job)
    health = await (await client.get("/healthz")).json()
    assert health["components"]["retention"]["up"] is True


def test_purge_dry_run_from_the_command_line_says_what_would_go(tmp_path: Path) -> None:
    env = dict(os.environ, HOTLINE_SERVICE_VAR_DIR=str(tmp_path / "var"), HOTLINE_DATABASE_URL="",
               HOTLINE_RETENTION_CONVERSATIONS_DAYS="30")
    run = subprocess.run([sys.executable, "run_hotline.py", "purge", "--dry-run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "would delete or anonymize" in run.stdout and "messages" in run.stdout and "tickets" in run.stdout
    done = subprocess.run([sys.executable, "run_hotline.py", "purge"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "batches, longest" in done.stdout


async def test_the_api_runs_and_lists_purges_for_admins_only(client: TestClient) -> None:
    from tests.conftest import login
    assert (await client.post("/api/privacy/purge?dry_run=1", headers=SERVICE)).status == 403
    headers = await login(client, "admin")
    resp = await client.post("/api/privacy/purge?dry_run=1", headers=headers)
    assert resp.status == 200 and (await resp.json())["dry_run"] is True
    runs = (await (await client.get("/api/privacy/runs?kind=purge", headers=headers)).json())["runs"]
    assert runs[0]["dry_run"] is True and runs[0]["actor_name"] == "admin"


async def test_the_running_bot_forgets_conversations_gone_quiet(ctx: AppContext,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With one Rasa worker its trackers live in its memory: the purge empties those past tracker_days."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from hotline.privacy import tracker
    from hotline.rasa.client import RasaClient
    from tests.test_resident_rights import FakeRasa

    async def no_sql_store(_: AppContext) -> bool:  # a database some other test gave Rasa's table
        return False

    monkeypatch.setattr(tracker, "_sql_store", no_sql_store)
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        quiet = Conversation(channel="wechat", external_user="o-quiet", created_at=now - dt.timedelta(days=40),
                             updated_at=now - dt.timedelta(days=31))
        talking = Conversation(channel="web", external_user="web-talking", created_at=now, updated_at=now)
        session.add_all([quiet, talking])
        await session.flush()
        quiet_id = quiet.id
    rasa = FakeRasa()
    app = web.Application()
    app.router.add_put("/conversations/{sender}/tracker/events", rasa.replace_events)
    async with TestServer(app) as server:
        ctx.bot = RasaClient(str(server.make_url("/")), timeout=5.0)
        await purge_job.run_purge(ctx)
        await ctx.bot.close()
    assert rasa.emptied == [f"wechat-{quiet_id}"]
