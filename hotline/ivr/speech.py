"""Numbers, money, dates and codes as a Mandarin speaker says them, for the IVR's prompts.

The synthesizer reads Chinese characters reliably and Arabic numerals badly,
so every number a caller hears is turned into characters here first:
- integers with 零 for gaps (1005 一千零五, 10005 一万零五) and 十 for a leading
  ten (15 十五, 150000 十五万);
- 两 for a leading 2 before 百/千/万/亿 (200 两百, 22000 两万二千, but 1200 一千二百)
  and for a lone 2 before a measure word (两元, 两小时, 两个工作日);
- money in 元/角/分 (205 fen 两元零五分);
- account and ticket numbers digit by digit, 1 as 幺 as on the telephone.
"""
from __future__ import annotations

import datetime as dt
import re

DIGITS = "零一二三四五六七八九"
PHONE_DIGITS = "零幺二三四五六七八九"
_UNITS = ("", "十", "百", "千")
_SECTIONS = ("", "万", "亿", "万亿")
MEASURE_WORDS = ("个", "元", "块", "角", "分钟", "分", "小时", "天", "日", "位", "次", "号", "周", "月", "年")


def _section(n: int) -> str:
    """0 < n < 10000, with 零 for inner gaps."""
    out: list[str] = []
    gap = False
    for pos in (3, 2, 1, 0):
        digit = n // 10 ** pos % 10
        if digit == 0:
            gap = bool(out)
            continue
        if gap:
            out.append("零")
            gap = False
        out.append(DIGITS[digit] + _UNITS[pos])
    return "".join(out)


def integer(n: int) -> str:
    """An integer as a quantity: 1005 → 一千零五, 200 → 两百, 12 → 十二."""
    if n < 0:
        return "负" + integer(-n)
    if n == 0:
        return "零"
    if n >= 10 ** 16:
        raise ValueError(f"{n} is too large to read")
    sections: list[int] = []
    while n:
        sections.append(n % 10000)
        n //= 10000
    out = ""
    gap = False
    for index in range(len(sections) - 1, -1, -1):
        value = sections[index]
        if value == 0:
            gap = bool(out)
            continue
        if out and (gap or value < 1000):
            out += "零"
        gap = False
        out += _section(value) + _SECTIONS[index]
    if out.startswith("一十"):
        out = out[1:]
    if out.startswith("二") and len(out) > 1 and out[1] in "百千万亿":
        out = "两" + out[1:]
    return out


def count(n: int, measure: str) -> str:
    """A number before a measure word: 2 → 两个, 12 → 十二个."""
    return ("两" if n == 2 else integer(n)) + measure


def money(fen: int) -> str:
    """An amount in fen: 12345 → 一百二十三元四角五分, 205 → 两元零五分, 0 → 零元."""
    sign = "负" if fen < 0 else ""
    yuan, rest = divmod(abs(fen), 100)
    jiao, cents = divmod(rest, 10)
    parts: list[str] = []
    if yuan:
        parts.append(count(yuan, "元"))
    if jiao:
        parts.append(count(jiao, "角"))
    elif yuan and cents:
        parts.append("零")
    if cents:
        parts.append(count(cents, "分"))
    return sign + ("".join(parts) if parts else "零元")


def digits(code: str) -> str:
    """A code read one character at a time: 3100000001 → 三幺零零零零零零零幺; '-' → 杠."""
    out: list[str] = []
    for ch in code:
        if ch.isdigit():
            out.append(PHONE_DIGITS[int(ch)])
        elif ch == "-":
            out.append("杠")
        elif ch.isalpha():
            out.append(f" {ch.upper()} ")
    return re.sub(r"\s+", " ", "".join(out)).strip()


def date(day: dt.date) -> str:
    """二零二六年十一月二十七日 (the year digit by digit, as it is said)."""
    year = "".join(DIGITS[int(ch)] for ch in str(day.year))
    return f"{year}年{integer(day.month)}月{integer(day.day)}日"


def clock(moment: dt.time | dt.datetime) -> str:
    """17:30 → 十七点三十分, 02:05 → 两点零五分, 09:00 → 九点."""
    hour = "两" if moment.hour == 2 else integer(moment.hour)
    if moment.minute == 0:
        return f"{hour}点"
    minute = f"零{DIGITS[moment.minute]}" if moment.minute < 10 else integer(moment.minute)
    return f"{hour}点{minute}分"


def month_day_clock(moment: dt.datetime) -> str:
    """十一月二十八日十七点三十分: a deadline within the year."""
    return f"{integer(moment.month)}月{integer(moment.day)}日{clock(moment)}"


_NUMBER = re.compile(r"(\d+)(" + "|".join(MEASURE_WORDS) + ")?")


def numbers_in(text: str) -> str:
    """Arabic numerals inside a sentence, read as quantities: 4小时 → 四小时, 2个工作日 → 两个工作日."""
    def say(match: re.Match[str]) -> str:
        n, measure = int(match.group(1)), match.group(2)
        return count(n, measure) if measure else integer(n)
    return _NUMBER.sub(say, text)
