"""A caller's account number and balance are heard, but never written to the IVR's prompt cache."""
from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path

import pytest

from hotline.ivr.prompts import SPOKEN_NUMBER, PromptLibrary
from models import Bill, Customer
from tests.ivr.test_engine import _call, residents  # noqa: F401  (the residents fixture)


def _pcm(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return wav.readframes(wav.getnframes())


def _cache_files(cache: Path) -> set[Path]:
    return {p for p in cache.rglob("*") if p.is_file()}


async def _heard_balance(state, line) -> tuple[str, Path]:
    """The balance sentence as the caller heard it, and the audio played for it."""
    index = next(i for i, text in enumerate(state.spoken) if text.startswith("户号"))
    return state.spoken[index], line.played[index]


async def test_a_balance_is_heard_but_no_file_in_the_prompt_cache_holds_it(
        ctx, residents, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    PromptLibrary.check_tools()
    async with ctx.sessions.begin() as session:  # a third resident whose call takes the same path as the first
        other = Customer(account_number="3100000003", name="王芳", address="人民路3号", area="城西片区",
                         meter_model="LXS-15E", meter_size_dn=15, meter_serial="M3")
        session.add(other)
        await session.flush()
        session.add(Bill(customer_id=other.id, period="2026-08", reading_previous=10, reading_current=40,
                         volume_m3=30, amount_fen=9876, issued_on=dt.date(2026, 9, 1), due_on=dt.date(2026, 9, 15)))
    cache = tmp_path / "prompt-cache"
    prompts = PromptLibrary(tmp_path / "recorded", cache)
    synthesized: list[str] = []
    real = PromptLibrary._synthesize

    async def spy(self: PromptLibrary, text: str, out: Path, trim: bool = False) -> None:
        synthesized.append(text)
        await real(self, text, out, trim)

    monkeypatch.setattr(PromptLibrary, "_synthesize", spy)
    await prompts.prepare_numerals()

    # Callers from numbers not on the accounts: both calls take the same path through the menu.
    state, call, line = await _call(ctx, prompts, "13100000001#", caller="13600136000")
    sentence, audio = await _heard_balance(state, line)
    assert sentence.startswith("户号三幺零零零零零零零幺")
    assert "一百二十三元四角五分" in "\n".join(state.spoken)
    assert call.account_number == "3100000001"

    # Nothing synthesized into the cache speaks more than one numeral: no account, no amount.
    assert synthesized and all(len(run) == 1 for text in synthesized for run in SPOKEN_NUMBER.findall(text))
    assert not any("三幺零零" in text or "一百二十三元" in text for text in synthesized)

    # The caller heard the account's digits: the audio played is those numerals' cached pieces, in order,
    # and it lives outside the cache.
    assert not audio.resolve().is_relative_to(cache.resolve())
    pcm, at = _pcm(audio), 0
    for char in "三幺零零零零零零零幺":
        piece = _pcm(await prompts.numeral(char))
        found = pcm.find(piece, at)
        assert found >= 0, f"{char} not heard in order"
        at = found + len(piece)

    # Another resident's balance adds no file to the cache at all.
    before = _cache_files(cache)
    state, _, line = await _call(ctx, prompts, "13100000003#", caller="13700137000")
    sentence, audio = await _heard_balance(state, line)
    assert sentence.startswith("户号三幺零零零零零零零三")
    assert "九十八元七角六分" in "\n".join(state.spoken)
    assert _cache_files(cache) == before
    prompts.close()
    assert not audio.exists()  # the composed audio went with the library's private directory
