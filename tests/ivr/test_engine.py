"""The default voice menu (ivr_flows/main.yml) run by the engine over a scripted line,
with real prompt audio (espeak-ng + sox) and the real store."""
from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from hotline.config import ROOT
from hotline.ivr.engine import FlowRunner
from hotline.ivr.flows import load_flows
from hotline.ivr.prompts import PromptLibrary
from models import Bill, Call, Customer, CustomerPhone, Outage, Payment, Ticket, TicketAttachment
from tests.conftest import local
from tests.ivr.scripted_line import HANG_UP, SILENCE, ScriptedLine

FLOWS = load_flows(ROOT / "ivr_flows")
QUEUE = "sip:queue@127.0.0.1:5070"


@pytest.fixture(scope="session")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    PromptLibrary.check_tools()
    return PromptLibrary(tmp_path_factory.mktemp("recorded"), tmp_path_factory.mktemp("prompt-cache"))


@pytest_asyncio.fixture
async def residents(ctx) -> None:
    """3100000001 owes 123.45 元 and lives where water is off; 3100000002 has 50 元 credit."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        owing = Customer(account_number="3100000001", name="张伟", address="中山东路1号", area="城东片区",
                         meter_model="LXS-15E", meter_size_dn=15, meter_serial="M1")
        paid_up = Customer(account_number="3100000002", name="李娜", address="创业大道2号", area="开发区",
                           meter_model="LXS-15E", meter_size_dn=15, meter_serial="M2")
        session.add_all([owing, paid_up])
        await session.flush()
        session.add_all([
            CustomerPhone(customer_id=owing.id, phone="13800138000"),
            CustomerPhone(customer_id=paid_up.id, phone="13900139000"),
            Bill(customer_id=owing.id, period="2026-08", reading_previous=100, reading_current=130, volume_m3=30,
                 amount_fen=12345, issued_on=dt.date(2026, 9, 1), due_on=dt.date(2026, 9, 15)),
            Payment(customer_id=paid_up.id, amount_fen=5000, paid_at=now, method="wechat"),
            Outage(area="城东片区", title="中山东路主管道改造计划停水", starts_at=now - dt.timedelta(hours=1),
                   ends_at=now + dt.timedelta(hours=5)),
        ])


async def _call(ctx, prompts, keys: str, caller: str = "13800138000", agent_uri: str = "",
                transfer_ok: bool = False):
    line = ScriptedLine(keys, caller=caller, transfer_ok=transfer_ok)
    state = await FlowRunner(ctx, FLOWS["main"], prompts, line, agent_uri).run()
    async with ctx.readers() as session:
        call = (await session.execute(select(Call).where(Call.id == state.call_id))).scalar_one()
    return state, call, line


def _heard(state) -> str:
    return "\n".join(state.spoken)


async def test_balance_and_arrears_are_read_in_yuan_jiao_fen(ctx, prompts, residents) -> None:
    state, call, line = await _call(ctx, prompts, "13100000001#")
    heard = _heard(state)
    assert "户号三幺零零零零零零零幺，您的预存余额为零元" in heard
    assert "您目前欠费一百二十三元四角五分，共一期" in heard
    assert (call.menu_path, call.digits, call.account_number, call.outcome) == (
        ["主菜单", "余额查询"], "13100000001#", "3100000001", "self_served")
    assert call.ended_at is not None and line.hung_up
    assert all(p.suffix == ".wav" for p in line.played)


async def test_a_known_outage_in_the_callers_area_comes_before_the_menu(ctx, prompts, residents) -> None:
    state, *_ = await _call(ctx, prompts, HANG_UP)
    assert state.spoken[0].startswith("您好") and state.spoken[1].startswith("停水提示：中山东路主管道改造计划停水")
    other, *_ = await _call(ctx, prompts, HANG_UP, caller="13900139000")
    assert not any("停水提示" in s for s in other.spoken)


async def test_an_unknown_account_is_asked_again_then_no_arrears(ctx, prompts, residents) -> None:
    # 3100000002 is not the calling number's account: its registered phone's last four digits prove it.
    state, call, _ = await _call(ctx, prompts, "19999999999#3100000002#9000#")
    heard = _heard(state)
    assert "没有找到这个户号" in heard and "您的预存余额为五十元" in heard and "您目前没有欠费" in heard
    assert call.account_number == "3100000002"


async def test_a_repair_report_becomes_a_ticket_read_back_digit_by_digit(ctx, prompts, residents) -> None:
    state, call, _ = await _call(ctx, prompts, "21#")  # leak, account unknown: found by the calling number
    async with ctx.readers() as session:
        ticket = await session.get(Ticket, call.ticket_id)
    assert ticket is not None and ticket.business_type == "leak" and ticket.channel == "phone"
    assert ticket.account_number == "3100000001" and ticket.contact_phone == "13800138000"
    spoken_number = "".join("零幺二三四五六七八九"[int(c)] if c.isdigit() else "杠" for c in ticket.number[2:])
    assert f"工单号{spoken_number}" in _heard(state)
    assert "四小时内与您联系" in _heard(state) or "小时内与您联系" in _heard(state)
    assert (call.outcome, call.menu_path) == ("ticket", ["主菜单", "报修", "管道漏水"])


async def test_invalid_keys_are_retried_then_the_call_ends(ctx, prompts, residents) -> None:
    state, call, line = await _call(ctx, prompts, "987")
    assert _heard(state).count("您的输入有误") == 2
    assert state.spoken[-1] == "感谢您的来电，再见。" and line.hung_up
    assert (call.digits, call.outcome) == ("987", "abandoned")


async def test_star_repeats_the_menu(ctx, prompts, residents) -> None:
    state, *_ = await _call(ctx, prompts, "*" + SILENCE + SILENCE + SILENCE)
    assert sum(s.startswith("查询水费余额") for s in state.spoken) == 4  # once, repeated, then two retries


async def test_a_person_during_hours_is_a_transfer(ctx, prompts, residents, clock) -> None:
    clock.now = local(2026, 9, 24, 10, 0)
    state, call, line = await _call(ctx, prompts, "0", agent_uri=QUEUE, transfer_ok=True)
    assert line.transfers == [QUEUE] and call.outcome == "transferred"
    assert "正在为您转接人工服务" in _heard(state)


async def test_a_failed_transfer_takes_a_voicemail_and_a_callback_ticket(ctx, prompts, residents, clock) -> None:
    clock.now = local(2026, 9, 24, 10, 0)
    state, call, line = await _call(ctx, prompts, "0", agent_uri=QUEUE, transfer_ok=False)
    assert line.transfers == [QUEUE]
    await _assert_voicemail(ctx, call, "inquiry")
    assert "您的留言已记录" in _heard(state)


async def test_at_night_a_person_means_a_voicemail(ctx, prompts, residents, clock) -> None:
    clock.now = local(2026, 9, 24, 22, 30)
    state, call, line = await _call(ctx, prompts, "0", agent_uri=QUEUE)
    assert line.transfers == [] and "现在不是人工服务时间" in _heard(state)
    await _assert_voicemail(ctx, call, "inquiry")


async def test_a_complaint_is_a_voicemail_ticket_with_the_recording(ctx, prompts, residents) -> None:
    _, call, _ = await _call(ctx, prompts, "3")
    await _assert_voicemail(ctx, call, "complaint")


async def _assert_voicemail(ctx, call: Call, category: str) -> None:
    assert call.outcome == "voicemail" and call.recording_path
    recording = ctx.config.var_dir / call.recording_path
    with wave.open(str(recording)) as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() > 0
    async with ctx.readers() as session:
        ticket = await session.get(Ticket, call.ticket_id)
        attachments = (await session.execute(select(TicketAttachment).where(
            TicketAttachment.ticket_id == ticket.id))).scalars().all()
    assert ticket.category == category and ticket.account_number == "3100000001"
    assert [a.kind for a in attachments] == ["voice"]


async def test_hanging_up_mid_menu_is_recorded_as_abandoned(ctx, prompts, residents) -> None:
    _, call, _ = await _call(ctx, prompts, "1310" + HANG_UP)
    assert (call.outcome, call.digits) == ("abandoned", "1310")
    assert call.ended_at is not None and call.menu_path == ["主菜单", "余额查询"]


async def test_outages_and_business_information(ctx, prompts, residents) -> None:
    state, call, _ = await _call(ctx, prompts, "4", caller="13900139000")
    assert "停水通知：城东片区，中山东路主管道改造计划停水" in _heard(state)
    assert call.outcome == "self_served"


def test_prompts_are_8khz_mono_and_a_recording_overrides_the_text(prompts: PromptLibrary, tmp_path: Path) -> None:
    import asyncio

    async def go() -> None:
        path = await prompts.audio("您好，欢迎致电供水服务热线。", "welcome")
        with wave.open(str(path)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert wav.getnframes() > 8000  # more than a second of speech
        assert await prompts.audio("您好，欢迎致电供水服务热线。", "welcome") == path  # cached
        recorded = prompts.recorded_dir / "welcome.wav"
        with wave.open(str(recorded), "wb") as out:  # a studio file at 16 kHz
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(b"\x10\x00" * 16000)
        override = await prompts.audio("您好，欢迎致电供水服务热线。", "welcome")
        assert override != path
        with wave.open(str(override)) as wav:
            assert wav.getframerate() == 8000 and abs(wav.getnframes() - 8000) < 100
        recorded.unlink()

    asyncio.run(go())


async def test_a_call_is_recorded_through_its_door_with_live_events(ctx) -> None:
    """Consoles hear a call begin and end, after each is committed."""
    from hotline.ivr import call_records
    heard: list[dict] = []
    ctx.live.subscribe(heard.append)
    call_id = await call_records.begin(ctx, sip_call_id="door-1", caller="13800000000", callee="96116",
                                       now=ctx.clock())
    await call_records.end(ctx, call_id, call_records.CallResult(outcome="self_served", digits="1"), ctx.clock())
    await call_records.refused(ctx, sip_call_id="door-2", caller="13800000001", callee="96116", outcome="failed",
                               now=ctx.clock())
    await call_records.refused(ctx, sip_call_id="door-2", caller="13800000001", callee="96116", outcome="failed",
                               now=ctx.clock())  # a retransmitted refusal is recorded once
    assert [(e["type"], e["outcome"]) for e in heard] == [
        ("call.started", None), ("call.ended", "self_served"), ("call.ended", "failed")]
