"""How numbers, money, dates and codes are read to callers (Mandarin reading rules)."""
from __future__ import annotations

import datetime as dt

import pytest

from hotline.ivr import speech


@pytest.mark.parametrize("n, said", [
    (0, "零"), (7, "七"), (10, "十"), (15, "十五"), (20, "二十"), (22, "二十二"), (110, "一百一十"),
    (1005, "一千零五"), (1010, "一千零一十"), (1050, "一千零五十"), (10005, "一万零五"),
    (100500, "十万零五百"), (150000, "十五万"), (1000000, "一百万"), (100000001, "一亿零一"),
    (12345678, "一千二百三十四万五千六百七十八"), (30000, "三万"), (10020, "一万零二十"),
])
def test_integers_use_zero_for_gaps_and_drop_a_leading_one_before_ten(n: int, said: str) -> None:
    assert speech.integer(n) == said


@pytest.mark.parametrize("n, said", [
    (2, "二"), (200, "两百"), (2000, "两千"), (2200, "两千二百"), (20000, "两万"), (22000, "两万二千"),
    (2000000, "两百万"), (200000000, "两亿"), (1200, "一千二百"), (12, "十二"), (222, "两百二十二"),
])
def test_a_leading_two_before_hundred_thousand_or_ten_thousand_is_liang(n: int, said: str) -> None:
    assert speech.integer(n) == said


def test_a_lone_two_before_a_measure_word_is_liang() -> None:
    assert speech.count(2, "个") == "两个"
    assert speech.count(12, "个") == "十二个"
    assert speech.count(20, "小时") == "二十小时"
    assert speech.numbers_in("2个工作日") == "两个工作日"
    assert speech.numbers_in("4小时内到达，5个工作日内修复") == "四小时内到达，五个工作日内修复"
    assert speech.numbers_in("30分钟") == "三十分钟"


@pytest.mark.parametrize("fen, said", [
    (0, "零元"), (1, "一分"), (2, "两分"), (20, "两角"), (100, "一元"), (200, "两元"), (205, "两元零五分"),
    (250, "两元五角"), (12345, "一百二十三元四角五分"), (100005, "一千元零五分"), (1200000, "一万二千元"),
    (-350, "负三元五角"), (1002, "十元零两分"),
])
def test_money_is_read_in_yuan_jiao_and_fen(fen: int, said: str) -> None:
    assert speech.money(fen) == said


def test_account_and_ticket_numbers_are_read_digit_by_digit() -> None:
    assert speech.digits("3100000001") == "三幺零零零零零零零幺"
    assert speech.digits("GD20261127-0012") == "G D 二零二六幺幺二七杠零零幺二"
    assert speech.digits("13800138000") == "幺三八零零幺三八零零零"


def test_dates_and_times() -> None:
    assert speech.date(dt.date(2026, 11, 27)) == "二零二六年十一月二十七日"
    assert speech.date(dt.date(2027, 1, 1)) == "二零二七年一月一日"
    assert speech.clock(dt.time(17, 30)) == "十七点三十分"
    assert speech.clock(dt.time(2, 5)) == "两点零五分"
    assert speech.clock(dt.time(9, 0)) == "九点"
    assert speech.clock(dt.time(12, 10)) == "十二点十分"
    assert speech.month_day_clock(dt.datetime(2026, 12, 2, 17, 30)) == "十二月二日十七点三十分"
