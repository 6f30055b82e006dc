"""The outbound dialler against real peers on 127.0.0.1: Debian's Kamailio as registrar and authenticating
proxy (401 with qop=auth for REGISTER, 407 for INVITE, record-routed), sipp as the resident's phone.

Each test names the pyVoIP 1.6.8 defect it proves fixed (hotline/ivr/outbound/pyvoip_fixes.py, D1-D9).
The dialler runs in this process with the test's clock; one Kamailio serves the module.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from hotline.actors import Actor
from hotline.callbacks.scheduler import calling_window, next_calling_time
from hotline.callbacks.scheduler import sweep as callback_sweep
from hotline.config import Config
from hotline.context import AppContext
from hotline.ivr.outbound.dialler import Dialler
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft
from models import Call, CallbackTask, Customer, CustomerPhone, Outage, Ticket
from models.call import OutboundJob
from tests.conftest import local
from tests.ivr import kamailio, sipp, sipp_uas

PASSWORD = "dialler-secret"
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[kamailio.Kamailio, int]]:
    """One Kamailio for the module; the carrier port is where each test's sipp phone listens."""
    carrier = sipp.free_udp_port()
    with kamailio.running(HERE / "kamailio-proxy.cfg", tmp_path_factory.mktemp("kamailio-outbound"),
                          password=PASSWORD, carrier=carrier) as kam:
        yield kam, carrier


@pytest.fixture(scope="module")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prompt-cache")


@pytest.fixture
def db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: these tests are about SIP; the store's behaviour is tested on both backends elsewhere."""
    path = tmp_path / "hotline.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def config(config: Config, pbx: tuple[kamailio.Kamailio, int], prompt_cache: Path, tmp_path: Path) -> Config:
    kam, _ = pbx
    var = Path(config.service.var_dir)
    var.mkdir(parents=True, exist_ok=True)
    os.symlink(prompt_cache, var / "prompt-cache")
    out = config.outbound
    out.enabled, out.registrar, out.username, out.password = True, f"127.0.0.1:{kam.port}", "dialler", PASSWORD
    out.caller_id, out.local_host, out.sip_port = "96345", "127.0.0.1", sipp.free_udp_port()
    out.ring_seconds, out.lines, out.interval_seconds = 4.0, 4, 0.5
    base = 40000 + (sipp.free_udp_port() % 200) * 50
    out.rtp_port_min, out.rtp_port_max = base, base + 48
    return config


@pytest_asyncio.fixture
async def dialler(ctx: AppContext) -> AsyncIterator[Dialler]:
    """The dialler, registered; its loop is not running: each test sweeps with its own clock."""
    d = Dialler(ctx)
    await d.warm()
    await asyncio.to_thread(d.phone.start)
    try:
        await _until(lambda: d.phone.sip.registered, 10, d)
        yield d
    finally:
        await d.stop()


async def _until(check, seconds: float, dialler: Dialler | None = None) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {seconds} s; dialler: {dialler.status() if dialler else '-'}")
        await asyncio.sleep(0.05)


async def _phone_ticket(ctx: AppContext, staff: dict[str, Actor], phone: str) -> tuple[str, int]:
    """A repair reported by telephone, resolved: its callback task is due."""
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.create_ticket(session, ctx.router, TicketDraft(
            category="repair", business_type="leak", description="门口水管漏水", channel="phone", phone=phone),
            staff["agent1"], ctx.clock())
        number = ticket.number
    for action, actor, kwargs in [("assign", "sun.repair", {"assignee": "crew"}), ("start", "crew", {}),
                                  ("resolve", "crew", {"note": "已更换漏水管段"})]:
        async with ctx.sessions.begin() as session:
            ticket = await lifecycle.get_ticket(session, number, staff[actor])
            if action == "start" and ticket.status != "assigned":
                continue
            await lifecycle.transition(session, ctx.router, ticket, action, staff[actor], ctx.clock(), **kwargs)
    async with ctx.readers() as session:
        task = (await session.execute(select(CallbackTask).join(Ticket, Ticket.id == CallbackTask.ticket_id)
                                      .where(Ticket.number == number))).scalar_one()
    return number, task.id


async def _state(ctx: AppContext, number: str) -> tuple[Ticket, CallbackTask, list[Call]]:
    async with ctx.readers() as session:
        ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
        task = (await session.execute(select(CallbackTask).where(CallbackTask.ticket_id == ticket.id))).scalar_one()
        calls = list((await session.execute(select(Call).where(Call.callback_task_id == task.id)
                                            .order_by(Call.id))).scalars())
    return ticket, task, calls


async def _callback_call(ctx: AppContext, dialler: Dialler, phone_xml: str, tmp_path: Path, number: str,
                         carrier: int, now: dt.datetime) -> tuple[int, str, sipp.Heard]:
    """The callback scheduler hands the task to the dialler; the dialler calls the sipp phone once."""
    now = next_calling_time(now, calling_window("08:00-21:00"), ctx.router.calendar.timezone)
    phone = sipp_uas.answer_calls(carrier, phone_xml, tmp_path / "phone")
    try:
        await asyncio.sleep(0.3)  # sipp binds its port
        ctx.clock.now = now  # type: ignore[attr-defined]
        assert await callback_sweep(ctx, now) >= 1
        assert await dialler.sweep(now) == 1
        await dialler.wait_idle()
        return await asyncio.to_thread(phone.finish, 60)
    finally:
        phone.kill()


# --- the survey ------------------------------------------------------------------------------------------


async def test_pressing_3_reopens_and_pressing_1_closes(ctx, staff, dialler, pbx, tmp_path) -> None:
    """D1 (ACK with the 200's To-tag, checked by sipp), D4/D5 (407 answered with a digest over the
    Request-URI, 401 with qop=auth at registration), D9 (the answer arrives while nothing holds the receive
    lock): the resident hears the survey at 50 packets/s and presses 3, then on another ticket 1."""
    _, carrier = pbx
    number, _ = await _phone_ticket(ctx, staff, "13900000001")
    task_due = (await _state(ctx, number))[1].due_at
    code, log, heard = await _callback_call(ctx, dialler, sipp_uas.scenario(keys="3", first_key_after_ms=3000),
                                            tmp_path / "three", number, carrier, max(task_due, ctx.clock()))
    assert code == 0, log
    assert 48 <= heard.packets_per_second() <= 51 and len(heard.arrivals) > 200
    ticket, task, calls = await _state(ctx, number)
    assert ticket.status == "reopened" or ticket.reopen_count == 1, ticket.status
    assert task.result == "dissatisfied" and task.attempts[-1]["result"] == "dissatisfied"
    [call] = calls
    assert (call.direction, call.purpose, call.outcome, call.callee, call.digits) == (
        "outbound", "callback", "answered", "13900000001", "3")
    assert call.menu_path[-1] == "不满意" and call.answered_at and call.ended_at

    number, _ = await _phone_ticket(ctx, staff, "13900000002")
    task_due = (await _state(ctx, number))[1].due_at
    code, log, _ = await _callback_call(ctx, dialler, sipp_uas.scenario(keys="1", first_key_after_ms=3000),
                                        tmp_path / "one", number, carrier, max(task_due, ctx.clock()))
    assert code == 0, log
    ticket, task, calls = await _state(ctx, number)
    assert (ticket.status, task.result, calls[0].digits) == ("closed", "satisfied", "1")


async def test_silence_busy_ringing_and_unknown_numbers(ctx, staff, dialler, pbx, tmp_path) -> None:
    """D2 (486, 487 and 404 end the call instead of leaving it DIALING), D3 (CANCEL at the ring timeout):
    silence, busy and no answer are tried again at the next attempt; a 404 goes to agents at once."""
    _, carrier = pbx
    cases = [("silent", sipp_uas.scenario(), "answered", "no_key", None),
             ("busy", sipp_uas.scenario("486"), "busy", "busy", 486),
             ("ringing", sipp_uas.scenario("ring"), "no_answer", "no_answer", 487),
             ("unknown", sipp_uas.scenario("404"), "invalid_number", "invalid_number", 404)]
    for i, (name, xml, outcome, result, status) in enumerate(cases):
        number, _ = await _phone_ticket(ctx, staff, f"1370000000{i}")
        due = (await _state(ctx, number))[1].due_at
        started = asyncio.get_running_loop().time()
        code, log, _ = await _callback_call(ctx, dialler, xml, tmp_path / name, number, carrier,
                                            max(due, ctx.clock()))
        assert code == 0, f"{name}: {log}"
        ticket, task, [call] = await _state(ctx, number)
        assert (call.outcome, call.sip_status) == (outcome, status if status else 200), name
        assert task.attempts[-1]["result"] == result, name
        if name == "ringing":  # cancelled at the 4 s ring timeout, not left ringing
            assert asyncio.get_running_loop().time() - started < 15
        if name == "unknown":
            assert task.manual and "号码无效" in task.note  # not retried: an agent checks the number
        else:
            assert not task.manual and task.state == "in_progress" and ticket.status == "resolved", name
            assert task.next_attempt_at == call.started_at + dt.timedelta(hours=ctx.config.callback.retry_hours)
        async with ctx.sessions.begin() as session:  # park it: the next case's clock is past its retry
            (await session.get(CallbackTask, task.id)).next_attempt_at = None  # type: ignore[union-attr]
    assert dialler.phone.calls == {}  # every call ended, its RTP ports released


async def test_a_long_call_is_not_dropped(ctx, staff, dialler, pbx, tmp_path) -> None:
    """D1: with 1.6.8's ACK (a fresh To-tag, no route set) the proxy drops the ACK, the phone resends its 200
    and gives up after ~30 s. Here the resident keeps asking to hear it again (0) and answers after 40 s."""
    _, carrier = pbx
    number, _ = await _phone_ticket(ctx, staff, "13500000005")
    due = (await _state(ctx, number))[1].due_at
    xml = sipp_uas.scenario(keys="0001", first_key_after_ms=5000, key_gap_ms=12000)
    code, log, heard = await _callback_call(ctx, dialler, xml, tmp_path / "long", number, carrier,
                                            max(due, ctx.clock()))
    assert code == 0, log
    ticket, task, [call] = await _state(ctx, number)
    assert call.ended_at and call.answered_at
    assert heard.arrivals[-1] - heard.arrivals[0] > 40  # the phone heard the survey for over 40 s
    assert (task.result, ticket.status, call.outcome) == ("satisfied", "closed", "answered")
    gaps = sorted(b - a for a, b in zip(heard.arrivals, heard.arrivals[1:], strict=False))
    assert gaps[int(len(gaps) * 0.99)] < 0.030 and 48 <= heard.packets_per_second() <= 51  # a shared CI core


# --- outage notices --------------------------------------------------------------------------------------


async def test_outage_notice_to_20_residents_on_4_lines(ctx, staff, pbx, tmp_path, client) -> None:
    """The service's own dialler (started by the phone plug-in): at most 4 calls at once, each phone once (two
    accounts share one), every result recorded; the notice is queued through the API a supervisor calls."""
    from tests.conftest import login
    _, carrier = pbx
    now = local(2026, 9, 24, 10, 0)
    ctx.clock.now = now  # type: ignore[attr-defined]
    dialler: Dialler = ctx.health_checks["outbound"].__self__  # type: ignore[attr-defined]
    await _until(lambda: ctx.health_checks["outbound"]()["registered"], 10, dialler)
    assert ctx.health_checks["outbound"]()["up"] is True
    async with ctx.sessions.begin() as session:
        for i in range(21):
            customer = Customer(account_number=f"39000000{i:02d}", name=f"住户{i}", address=f"幸福里{i}号",
                                area="幸福里", meter_model="LXS-15", meter_size_dn=15, meter_serial=f"M{i}")
            session.add(customer)
            await session.flush()
            session.add(CustomerPhone(customer_id=customer.id, phone=f"1880000{min(i, 19):04d}"))
        outage = Outage(area="幸福里", title="管网改造计划停水", detail="请提前储水。", planned=True,
                        starts_at=now + dt.timedelta(days=1), ends_at=now + dt.timedelta(days=1, hours=8))
        session.add(outage)
        await session.flush()
        outage_id = outage.id
    headers = await login(client, "sup")
    resp = await client.post(f"/api/outages/{outage_id}/notify_calls", headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["queued"] == 20
    again = await client.post(f"/api/outages/{outage_id}/notify_calls", headers=headers)
    assert (await again.json())["queued"] == 0  # each phone once per outage
    agent = await login(client, "agent1")
    assert (await client.post(f"/api/outages/{outage_id}/notify_calls", headers=agent)).status == 403

    phone = sipp_uas.answer_calls(carrier, sipp_uas.scenario(hang_up_after_ms=2500), tmp_path / "phones",
                                  calls=20)
    try:
        await asyncio.sleep(0.3)
        for _ in range(400):  # the dialler's own loop places the calls
            async with ctx.readers() as session:
                left = (await session.execute(select(OutboundJob).where(OutboundJob.state != "done"))).scalars().all()
            if not left and not dialler.in_progress:
                break
            await asyncio.sleep(0.25)
        code, log, heard = await asyncio.to_thread(phone.finish, 60)
    finally:
        phone.kill()
    assert code == 0, log
    assert dialler.most_at_once == 4
    async with ctx.readers() as session:
        calls = list((await session.execute(select(Call).where(Call.outage_id == outage_id))).scalars())
    assert len(calls) == 20 and len({c.callee for c in calls}) == 20
    assert all((c.direction, c.purpose, c.outcome) == ("outbound", "outage_notice", "answered") for c in calls)
    spans = [(c.started_at, c.ended_at) for c in calls]
    assert all(end is not None for _, end in spans)
    assert max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans) <= 4  # type: ignore[operator]
    listed = (await (await client.get("/api/calls", params={"direction": "outbound", "purpose": "outage_notice"}))
              .json())["items"]
    assert len(listed) == 20 and listed[0]["outcome"] == "answered" and listed[0]["direction"] == "outbound"


async def test_nothing_is_dialled_outside_calling_hours(ctx, staff, dialler, pbx) -> None:
    number, _ = await _phone_ticket(ctx, staff, "13300000003")
    async with ctx.sessions.begin() as session:
        task = (await session.execute(select(CallbackTask).join(Ticket).where(Ticket.number == number))).scalar_one()
        session.add(OutboundJob(purpose="callback", phone="13300000003", ticket_id=task.ticket_id,
                                callback_task_id=task.id, next_attempt_at=local(2026, 9, 28, 21, 30)))
    late = local(2026, 9, 28, 22, 0)
    assert await dialler.sweep(late) == 0
    async with ctx.readers() as session:
        job = (await session.execute(select(OutboundJob))).scalar_one()
        placed = (await session.execute(select(Call))).scalars().all()
    assert job.state == "queued" and job.next_attempt_at == local(2026, 9, 29, 8, 0) and not placed
    assert dialler.placed == 0


async def test_a_refused_registration_is_reported_retried_and_dials_nothing(ctx, config, pbx) -> None:
    """D6: 1.6.8 stops for good after three failures; the dialler keeps trying with back-off."""
    config.outbound.password = "wrong"
    d = Dialler(ctx)
    await asyncio.to_thread(d.phone.start)
    try:
        await _until(lambda: d.phone.sip.register_attempts >= 4, 20, d)
        status = d.status()
        assert status["up"] is False and status["registered"] is False and "401" in status["last_error"]
        async with ctx.sessions.begin() as session:
            session.add(OutboundJob(purpose="outage_notice", phone="13100000000", next_attempt_at=ctx.clock()))
        assert await d.sweep(ctx.clock()) == 0 and d.placed == 0
    finally:
        await d.stop()
