"""Option 1 of the voice menu for callers who are not the account's registered phone: the amount due at most,
the balance and arrears after keying the last four digits of the registered phone, and only so many
different accounts an hour from one calling number."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from models import Customer
from tests.ivr.test_engine import _call, _heard, prompts, residents  # noqa: F401  (fixtures)

pytestmark = pytest.mark.asyncio

STRANGER = "13700137000"
AMOUNT_DUE = "户号三幺零零零零零零零幺，目前应缴金额为一百二十三元四角五分"


async def test_the_registered_number_hears_the_balance_without_a_proof(ctx, prompts, residents) -> None:
    state, call, _ = await _call(ctx, prompts, "13100000001#")
    heard = _heard(state)
    assert "您的预存余额为零元" in heard and "您目前欠费一百二十三元四角五分，共一期" in heard
    assert "后四位" not in heard and call.outcome == "self_served"


async def test_a_stranger_hears_only_the_amount_due(ctx, prompts, residents) -> None:
    state, call, _ = await _call(ctx, prompts, "13100000001##", caller=STRANGER)
    heard = _heard(state)
    assert "请输入该户号登记手机号码的后四位" in heard and AMOUNT_DUE in heard
    assert "预存余额" not in heard and "欠费一百" not in heard and "共一期" not in heard
    assert (call.account_number, call.outcome) == ("3100000001", "self_served")


async def test_a_stranger_who_keys_the_registered_phones_last_four_digits_hears_everything(
        ctx, prompts, residents) -> None:
    state, *_ = await _call(ctx, prompts, "13100000001#8000#", caller=STRANGER)
    heard = _heard(state)
    assert "您的预存余额为零元" in heard and "您目前欠费一百二十三元四角五分，共一期" in heard

    wrong, *_ = await _call(ctx, prompts, "13100000001#1234#", caller=STRANGER)
    heard = _heard(wrong)
    assert "手机号码后四位与登记信息不符" in heard and AMOUNT_DUE in heard and "预存余额" not in heard


async def test_with_anonymous_disclosure_none_a_stranger_hears_no_amount(ctx, prompts, residents) -> None:
    ctx.config.privacy.anonymous_disclosure = "none"
    state, *_ = await _call(ctx, prompts, "13100000001##", caller=STRANGER)
    heard = _heard(state)
    assert "未通过验证，无法查询该户号的金额" in heard and "元" not in heard
    proven, *_ = await _call(ctx, prompts, "13100000001#8000#", caller=STRANGER)
    assert "您的预存余额为零元" in _heard(proven)


async def test_wrong_digits_for_one_account_lock_it_for_every_caller(ctx, prompts, residents) -> None:
    for i in range(5):
        await _call(ctx, prompts, "13100000001#1111#", caller=f"1370000000{i}")
    state, *_ = await _call(ctx, prompts, "13100000001#8000#", caller="13600000009")
    heard = _heard(state)
    assert "验证尝试次数过多" in heard and "预存余额" not in heard and AMOUNT_DUE in heard


async def test_a_sixth_different_account_in_an_hour_is_refused(ctx, prompts, residents, client) -> None:
    async with ctx.sessions.begin() as session:
        for i in range(3, 7):
            session.add(Customer(account_number=f"310000000{i}", name="赵敏", address="人民路9号", area="城西片区",
                                 meter_model="LXS-15E", meter_size_dn=15, meter_serial=f"M{i}"))
    for i in range(1, 6):
        state, *_ = await _call(ctx, prompts, f"1310000000{i}##", caller=STRANGER)
        assert "目前应缴金额为" in _heard(state)
    state, call, _ = await _call(ctx, prompts, "13100000006##", caller=STRANGER)
    heard = _heard(state)
    assert "查询次数过多，请稍后再试" in heard and "应缴金额" not in heard
    mine, *_ = await _call(ctx, prompts, "13100000001#")  # the registered number is not throttled
    assert "您的预存余额为零元" in _heard(mine)

    text = await (await client.get("/metrics")).text()
    refusals = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "hotline_resident_refusals_total"}
    assert refusals[(("channel", "phone"), ("reason", "lookups"))] == 1
