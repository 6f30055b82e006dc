"""CallLine over a call placed with pyVoIP: what the flow engine sees of an outbound call.

pyVoIP's threads report a call's events through `CallEvents.listener`, which
hands them to the event loop (call_soon_threadsafe); the flow engine then only
awaits. Anything that may block (hanging up, which can wait for a CANCEL's
answer) runs in a worker thread.
"""
from __future__ import annotations

import array
import asyncio
import sys
import wave
from pathlib import Path
from typing import Any

from hotline.ivr.line import CallerHungUp
from hotline.ivr.outbound.pyvoip_fixes import DialledCall

RATE = 8000  # pyVoIP plays 8 kHz, 8-bit unsigned linear audio


class CallEvents:
    """One call's events on the loop: ringing, answered, ended (with the SIP status), digits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.ringing = False
        self.status = 0

    def listener(self, event: str, value: Any) -> None:
        """Called from pyVoIP's threads: only hands the event over."""
        try:
            self.loop.call_soon_threadsafe(self._on, event, value)
        except RuntimeError:  # the loop is closed: the service is stopping
            pass

    def _on(self, event: str, value: Any) -> None:
        if event == "digit":
            self.digits.put_nowait(str(value))
        elif event == "ringing":
            self.ringing = True
        elif event == "answered":
            self.answered.set()
        elif event == "ended":
            self.status = int(value)
            self.ended.set()


class AudioCache:
    """Prompt WAVs (8 kHz 16-bit mono, from PromptLibrary) as pyVoIP's 8-bit unsigned audio, converted once."""

    def __init__(self) -> None:
        self._cache: dict[Path, bytes] = {}

    async def get(self, path: Path) -> bytes:
        data = self._cache.get(path)
        if data is None:
            data = await asyncio.to_thread(self._convert, path)
            if len(self._cache) > 500:
                self._cache.clear()
            self._cache[path] = data
        return data

    @staticmethod
    def _convert(path: Path) -> bytes:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1 or wav.getframerate() != RATE:
                raise ValueError(f"{path}: expected 8 kHz 16-bit mono")
            frames = wav.readframes(wav.getnframes())
        samples = array.array("h")
        samples.frombytes(frames)
        if sys.byteorder == "big":
            samples.byteswap()
        return bytes(((s >> 8) + 128) & 0xFF for s in samples)


class PyVoIPCallLine:
    def __init__(self, call: DialledCall, events: CallEvents, audio: AudioCache, caller: str) -> None:
        self.call, self.events, self.audio = call, events, audio
        self.call_id, self.caller, self.callee = call.sip_call_id, caller, call.number
        self._playing_until = 0.0

    def _gone(self, partial: str = "") -> CallerHungUp:
        while not self.events.digits.empty():
            partial += self.events.digits.get_nowait()
        return CallerHungUp(partial)

    async def play(self, audio: Path, interruptible: bool = True) -> str:
        if self.events.ended.is_set():
            raise self._gone()
        if interruptible and not self.events.digits.empty():
            return self.events.digits.get_nowait()  # typed ahead: skip the prompt
        data = await self.audio.get(audio)
        loop = asyncio.get_running_loop()
        self.call.write_audio(data)  # queued; pyVoIP's sender thread plays it at 50 packets/s
        self._playing_until = max(loop.time(), self._playing_until) + len(data) / RATE
        while True:
            remaining = self._playing_until - loop.time()
            if remaining <= 0:
                return ""
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.events.ended.wait())]
            digit = asyncio.ensure_future(self.events.digits.get()) if interruptible else None
            if digit is not None:
                waits.append(digit)
            done, pending = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if digit is not None and digit in done:
                self.call.flush_audio()
                self._playing_until = loop.time()
                return digit.result()
            if self.events.ended.is_set():
                raise self._gone()

    async def collect(self, max_digits: int, terminator: str, timeout: float, already: str = "") -> str:  # noqa: ASYNC109
        got = already
        while len(got) < max_digits and not (terminator and got.endswith(terminator)):
            if self.events.ended.is_set():
                raise self._gone(got)
            digit = asyncio.ensure_future(self.events.digits.get())
            ended = asyncio.ensure_future(self.events.ended.wait())
            done, _ = await asyncio.wait([digit, ended], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if digit in done:
                got += digit.result()
                continue
            digit.cancel()
            if self.events.ended.is_set():
                raise self._gone(got)
            break  # silence
        return got

    async def record(self, path: Path, max_seconds: int) -> float:
        return 0.0  # outbound flows do not record

    async def transfer(self, uri: str) -> bool:
        return False  # an outbound survey or notice is not transferred

    async def hangup(self) -> None:
        if not self.events.ended.is_set():
            remaining = self._playing_until - asyncio.get_running_loop().time()
            if remaining > 0:  # let the goodbye finish playing
                await asyncio.wait([asyncio.ensure_future(self.events.ended.wait())], timeout=remaining)
            await asyncio.to_thread(self.call.hangup)
