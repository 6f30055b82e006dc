"""Public-opinion watch words (舆情) match words, never digits inside a phone, account or ticket number."""
from __future__ import annotations

import pytest

from hotline.config import ROOT
from hotline.conversations import service
from hotline.incidents.rules import load_watch_words
from tests.conftest import login

WATCH = load_watch_words(ROOT / "config" / "watch_words.yml")


@pytest.mark.parametrize("text", [
    "我的电话是13912345678",  # a mobile number with 12345 inside
    "户号3112345000，家里没水",  # an account number
    "工单GD20261234-5678怎么还没处理",  # a ticket number
    "电话０３１２－８１２３４５６",  # full-width digits are digits too
    "验证码123456",
])
def test_digits_inside_a_number_are_not_the_city_hotline(text: str) -> None:
    assert WATCH.found(text) == []


@pytest.mark.parametrize("text", [
    "再不修我就打12345投诉", "12345", "我要打１２３４５", "打了12345，还没人来", "(12345)", "12345热线说找你们",
])
def test_the_city_hotline_named_as_a_word_is_found(text: str) -> None:
    assert WATCH.found(text) == ["12345"]


def test_chinese_words_are_found_inside_a_sentence() -> None:
    assert WATCH.found("我要找电视台曝光你们") == ["曝光", "电视台"]


async def test_a_resident_giving_a_phone_number_raises_no_alert_and_the_report_counts_none(
        client, ctx, staff, clock) -> None:
    await service.receive(ctx, "web", "resident-phone", "我的电话是13912345678，户号3112345000", to_bot=False)
    await service.receive(ctx, "web", "resident-angry", "再不来修我就打12345投诉你们", to_bot=False)
    headers = await login(client, "sup")
    alerts = (await (await client.get("/api/alerts", headers=headers)).json())["items"]
    assert [a["words"] for a in alerts] == [["12345"]] and "投诉你们" in alerts[0]["excerpt"]
    day = clock().date().isoformat()
    report = await (await client.get("/api/reports/quality", params={"from": day, "to": day},
                                     headers=headers)).json()
    assert report["opinion_alerts"] == 1
