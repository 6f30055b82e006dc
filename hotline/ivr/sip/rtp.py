"""RTP for every call of a process, on the event loop: one 20 ms clock sends all calls' frames.

pyVoIP runs two threads per call and degrades past ~100 calls on two cores;
here a call costs one UDP socket and a few microseconds per tick. Prompts are
encoded to G.711 once and cached; incoming RFC 4733 events become digits
(the first packet of an event counts, its repeats and end packets do not;
events above 15 are ignored); incoming audio is kept only while recording.

Nothing one call does can stop the clock: a session sends only to an
address checked beforehand (addresses.sendable), and only once the call is
released (its ACK came, or RTP came from the offered address: symmetric
RTP), so a never-acknowledged INVITE makes no media; a session whose send
fails is taken off the clock and its call is failed; the clock itself is
restarted should it ever end, and notes when it last ticked (health).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import struct
import time
import warnings
import wave
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from hotline.ivr.sip.addresses import ip_literal, sendable

with warnings.catch_warnings():  # deprecated in 3.11, removed in 3.13 (then: pip install audioop-lts)
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

log = logging.getLogger(__name__)

FRAME = 160  # samples (and G.711 bytes) per 20 ms at 8 kHz
TICK = 0.020
VOICE_RMS = 300  # 16-bit RMS above which a packet counts as speech, not line noise
EVENTS = "0123456789*#ABCD"
SILENCE = {0: b"\xff" * FRAME, 8: b"\xd5" * FRAME}


def encode(pcm16: bytes, payload_type: int) -> bytes:
    return audioop.lin2ulaw(pcm16, 2) if payload_type == 0 else audioop.lin2alaw(pcm16, 2)


def decode(payload: bytes, payload_type: int) -> bytes:
    return audioop.ulaw2lin(payload, 2) if payload_type == 0 else audioop.alaw2lin(payload, 2)


class PromptFrames:
    """G.711 frames of prompt files, encoded once per codec (an LRU of recent prompts)."""

    def __init__(self, size: int = 512) -> None:
        self._cache: OrderedDict[tuple[Path, int], list[bytes]] = OrderedDict()
        self.size = size

    async def frames(self, path: Path, payload_type: int) -> list[bytes]:
        key = (path, payload_type)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        frames = await asyncio.to_thread(self._encode, path, payload_type)
        self._cache[key] = frames
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return frames

    @staticmethod
    def _encode(path: Path, payload_type: int) -> list[bytes]:
        with wave.open(str(path)) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (8000, 1, 2):
                raise ValueError(f"{path}: prompts must be 8 kHz mono 16-bit")
            data = encode(wav.readframes(wav.getnframes()), payload_type)
        silence = SILENCE[payload_type][:1]
        return [data[i:i + FRAME].ljust(FRAME, silence) for i in range(0, len(data), FRAME)]


class MediaFailed(Exception):
    """A call's media cannot go on (its socket closed, a send refused): the call ends as failed."""


class RtpSession(asyncio.DatagramProtocol):
    """One call's media: frames out on the shared clock, digits and (when asked) audio in."""

    def __init__(self, payload_type: int, dtmf_payload_type: int | None, on_digit: Callable[[str], None]) -> None:
        self.payload_type, self.dtmf_payload_type, self.on_digit = payload_type, dtmf_payload_type, on_digit
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None  # where frames go; None until the call is released
        self.offered: tuple[str, int] | None = None  # the offer's address, checked, not yet sent to
        self.family = socket.AF_INET
        self.on_failure: Callable[[Exception], None] | None = None
        self.local_port = 0
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.timestamp = random.getrandbits(32)
        self.queue: deque[bytes] = deque()
        self.drained: asyncio.Future[None] | None = None
        self.recording: list[bytes] | None = None
        self._last_event_ts: int | None = None
        self._event_active = False
        self.last_voice = 0.0  # loop time of the last loud packet while recording
        self.sent = self.received = self.ignored = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self.family = sock.family if sock is not None else socket.AF_INET
        self.local_port = transport.get_extra_info("sockname")[1]

    def offer(self, address: str, port: int) -> bool:
        """Note the offer's address (an IP literal); False when no packet could be sent there."""
        dest = sendable((address, port), self.family)
        self.offered = dest
        return dest is not None

    def release(self) -> None:
        """The call is confirmed (ACK): frames may go to the offered address from the next tick."""
        if self.remote is None and self.offered is not None:
            self.remote = self.offered

    # --- out -------------------------------------------------------------------
    def play(self, frames: list[bytes]) -> asyncio.Future[None]:
        """Queue frames; the future completes when the last one has gone out."""
        self.stop_playing()
        self.queue.extend(frames)
        self.drained = asyncio.get_running_loop().create_future()
        if not frames:
            self.drained.set_result(None)
        return self.drained

    def stop_playing(self) -> None:
        self.queue.clear()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def tick(self) -> None:
        if self.transport is None or self.remote is None:
            return
        if self.transport.is_closing():
            raise MediaFailed(f"the RTP socket on port {self.local_port} is closed")
        frame = self.queue.popleft() if self.queue else SILENCE[self.payload_type]
        header = struct.pack("!BBHII", 0x80, self.payload_type, self.seq, self.timestamp, self.ssrc)
        self.transport.sendto(header + frame, self.remote)
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + FRAME) & 0xFFFFFFFF
        self.sent += 1
        if not self.queue and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # --- in --------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._received(data, addr)
        except Exception:  # a malformed packet costs that packet, never the call
            self.ignored += 1
            log.debug("ignored an RTP packet from %s", addr, exc_info=True)

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            self.ignored += 1
            return  # not RTP
        self.received += 1
        if self.remote is None and self.offered is not None and self._from_offered(addr):
            self.remote = self.offered  # symmetric RTP: the offered address speaks, so it listens
        payload_type = data[1] & 0x7F
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
            offset += 4 + 4 * struct.unpack("!H", data[offset + 2:offset + 4])[0]
        payload = data[offset:]
        if payload_type == self.dtmf_payload_type and len(payload) >= 4:
            timestamp, end = struct.unpack("!I", data[4:8])[0], bool(payload[1] & 0x80)
            # A key press is the first packet of an event: a new timestamp, or (a replayed
            # capture, the same key again) a fresh start after the previous event ended.
            if timestamp != self._last_event_ts or (not self._event_active and not end):
                self._last_event_ts, self._event_active = timestamp, not end
                if payload[0] < len(EVENTS):
                    self.on_digit(EVENTS[payload[0]])
                else:
                    self.ignored += 1
                    log.info("ignoring telephone-event %d (not a key)", payload[0])
            elif end:
                self._event_active = False
        elif payload_type == self.payload_type and self.recording is not None:
            self.recording.append(payload)
            if audioop.rms(decode(payload, payload_type), 2) > VOICE_RMS:
                self.last_voice = asyncio.get_running_loop().time()

    def _from_offered(self, addr: tuple[str, int]) -> bool:
        assert self.offered is not None
        source = ip_literal(str(addr[0]))
        return source is not None and addr[1] == self.offered[1] and source == ip_literal(self.offered[0])

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable: the caller's media is gone
        log.debug("RTP error on port %d: %s", self.local_port, exc)

    def fail(self, exc: Exception) -> None:
        """Taken off the clock after a failed send: stop, and let the call know."""
        self.remote = None
        self.stop_playing()
        if self.on_failure is not None:
            self.on_failure(exc)

    def close(self) -> None:
        self.stop_playing()
        if self.transport is not None:
            self.transport.close()


class MediaClock:
    """Sends the next frame of every call every 20 ms, on an absolute schedule (no drift).

    One session's failure is that session's: it is taken off the clock and told (fail), the
    others carry on. Should the clock task end anyway, it is started again."""

    def __init__(self) -> None:
        self.sessions: set[RtpSession] = set()
        self.late_ticks = 0
        self.failed_sessions = 0
        self.restarts = 0
        self.last_tick = 0.0  # time.monotonic() of the last tick, for health
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self.last_tick = time.monotonic()  # its first tick is due now
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rtp-clock")
        self._task.add_done_callback(self._ended)

    def ticking(self, within: float = 1.0) -> bool:
        return self._task is not None and not self._task.done() and time.monotonic() - self.last_tick < within

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        exc = None if task.cancelled() else task.exception()
        log.error("the media clock ended (%r); starting it again", exc)
        self.restarts += 1
        self.start()

    def _tick_all(self) -> None:
        for session in list(self.sessions):
            try:
                session.tick()
            except Exception as exc:  # that call's media is over; the others' is not
                self.failed_sessions += 1
                self.sessions.discard(session)
                log.error("RTP on port %d failed: %r; ending that call", session.local_port, exc)
                try:
                    session.fail(exc)
                except Exception:
                    log.exception("ending a call whose media failed")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += TICK
            self.last_tick = time.monotonic()
            self._tick_all()
            delay = next_at - loop.time()
            if delay < -0.2:  # the loop was blocked: start afresh rather than burst
                self.late_ticks += 1
                next_at = loop.time()
            await asyncio.sleep(max(delay, 0))


async def open_session(host: str, port_range: tuple[int, int], payload_type: int, dtmf_payload_type: int | None,
                       on_digit: Callable[[str], None]) -> RtpSession:
    """Bind a free even port in the range."""
    loop = asyncio.get_running_loop()
    low, high = port_range
    start = random.randrange(low, high, 2)
    for i in range(0, high - low, 2):
        port = low + (start - low + i) % (high - low)
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: RtpSession(payload_type, dtmf_payload_type, on_digit), local_addr=(host, port))
            return protocol
        except OSError:
            continue
    raise OSError(f"no free RTP port in {low}-{high}")


def write_wav(path: Path, payloads: list[bytes], payload_type: int) -> float:
    """Decode a recording and write it as 8 kHz 16-bit WAV; returns its length in seconds."""
    pcm = decode(b"".join(payloads), payload_type)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a resident's voice: the service's alone
    with os.fdopen(fd, "wb") as file, wave.open(file, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)
    return len(pcm) / 2 / 8000
