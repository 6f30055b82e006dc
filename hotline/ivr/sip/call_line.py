"""CallLine over a SIP dialog and its RTP session: what the flow engine sees of a real call."""
from __future__ import annotations

import asyncio
import functools
import math
import struct
from pathlib import Path

from hotline.ivr.line import CallerHungUp
from hotline.ivr.sip import rtp
from hotline.ivr.sip.server import Dialog, SipServer

SILENCE_END = 5.0  # seconds without speech that end a voicemail


@functools.cache
def _beep(payload_type: int, ms: int = 300, hz: int = 1000) -> list[bytes]:
    samples = 8 * ms
    pcm = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(samples))
    data = rtp.encode(pcm, payload_type)
    return [data[i:i + rtp.FRAME] for i in range(0, len(data), rtp.FRAME)]


class SipCallLine:
    def __init__(self, server: SipServer, dialog: Dialog, frames: rtp.PromptFrames) -> None:
        self.server, self.dialog, self.frames = server, dialog, frames
        self.call_id, self.caller, self.callee = dialog.call_id, dialog.caller, dialog.callee

    def _gone(self, partial: str = "") -> CallerHungUp:
        """The caller hung up; keys pressed but not yet read still belong in the call record."""
        while not self.dialog.digits.empty():
            partial += self.dialog.digits.get_nowait()
        return CallerHungUp(partial, failed=self.dialog.failed)

    async def _first(self, *aws: asyncio.Future | asyncio.Task) -> None:
        done, pending = await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def play(self, audio: Path, interruptible: bool = True) -> str:
        if self.dialog.ended.is_set():
            raise self._gone()
        if interruptible and not self.dialog.digits.empty():
            return self.dialog.digits.get_nowait()  # the caller typed ahead: skip the prompt
        frames = await self.frames.frames(audio, self.dialog.offer.payload_type)
        return await self._play_frames(frames, interruptible)

    async def _play_frames(self, frames: list[bytes], interruptible: bool) -> str:
        media = self.dialog.media
        drained = media.play(frames)
        waits: list[asyncio.Future | asyncio.Task] = [drained, asyncio.ensure_future(self.dialog.ended.wait())]
        digit_task = asyncio.ensure_future(self.dialog.digits.get()) if interruptible else None
        if digit_task is not None:
            waits.append(digit_task)
        await self._first(*waits)
        if digit_task is not None and digit_task.done() and not digit_task.cancelled():
            media.stop_playing()
            return digit_task.result()
        if self.dialog.ended.is_set():
            raise self._gone()
        return ""

    async def collect(self, max_digits: int, terminator: str, timeout: float, already: str = "") -> str:  # noqa: ASYNC109
        got = already
        while len(got) < max_digits and not (terminator and got.endswith(terminator)):
            if self.dialog.ended.is_set():
                raise self._gone(got)
            digit = asyncio.ensure_future(self.dialog.digits.get())
            ended = asyncio.ensure_future(self.dialog.ended.wait())
            done, _ = await asyncio.wait([digit, ended], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if digit in done:
                ended.cancel()
                got += digit.result()
                continue
            digit.cancel()
            ended.cancel()
            if self.dialog.ended.is_set():
                raise self._gone(got)
            break  # silence
        return got

    async def record(self, path: Path, max_seconds: int) -> float:
        """After a beep, keep the caller's audio until '#', SILENCE_END seconds without speech, hang-up
        or max_seconds; a hang-up keeps the message (most callers just hang up when done)."""
        if self.dialog.ended.is_set():
            raise self._gone()
        await self._play_frames(_beep(self.dialog.offer.payload_type), interruptible=False)
        media = self.dialog.media
        loop = asyncio.get_running_loop()
        started = loop.time()
        media.recording, media.last_voice = [], started
        while not self.dialog.ended.is_set():
            now = loop.time()
            if now - started >= max_seconds or now - media.last_voice >= SILENCE_END:
                break
            digit = asyncio.ensure_future(self.dialog.digits.get())
            ended = asyncio.ensure_future(self.dialog.ended.wait())
            done, _ = await asyncio.wait([digit, ended], timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if digit in done:
                if digit.result() == "#":
                    break
            else:
                digit.cancel()
        payloads, media.recording = media.recording, None
        if media.last_voice == started:
            return 0.0  # not a word: no message
        return await asyncio.to_thread(rtp.write_wav, path, payloads, self.dialog.offer.payload_type)

    async def transfer(self, uri: str) -> bool:
        if self.dialog.ended.is_set():
            raise self._gone()
        if not uri:
            return False
        if await self.server.refer(self.dialog, uri):
            await self.server.bye(self.dialog)
            return True
        return False

    async def hangup(self) -> None:
        if not self.dialog.ended.is_set():
            await self.server.bye(self.dialog)
