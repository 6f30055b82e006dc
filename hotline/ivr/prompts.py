"""Prompt audio: 8 kHz mono 16-bit WAV files, recorded or synthesized, cached on disk.

A recorded file `<prompt id>.wav` in the prompt directory (any rate or format
sox reads) overrides the text for prompts without placeholders. Everything
else is synthesized from its Mandarin text with espeak-ng and converted with
sox, once: the cache key is a hash of the voice, speed and text.

A resident's numbers never reach the cache. A prompt filled in for one call
(no prompt id) whose text speaks numbers (户号三幺零零…, 一百二十三元四角五分, a
ticket number) is composed: its words are cached as they are (the flow's own
text), each numeral (零 … 九, 幺, 两, 十 百 千 万 亿, 元 角 分, 杠) is one cached
prompt of its own, and the joined audio is written for this one playback to a
private directory in memory (/dev/shm when there is one), outside the cache,
and deleted a minute later. So the cache holds the same few dozen numeral
files whoever calls, and no file anywhere keeps what one caller heard.
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

RATE = 8000
NUMERALS = "零一二三四五六七八九十百千万亿两幺杠"
UNITS = "元角分"
# A spoken number: it starts with a numeral and may carry money units (一百二十三元四角五分).
SPOKEN_NUMBER = re.compile(f"[{NUMERALS}][{NUMERALS}{UNITS}]*")
_SPEAKABLE = re.compile(r"[\w\u4e00-\u9fff]")
SPOKEN_SECONDS = 60.0  # a composed prompt's file is removed this long after it was made (played by then)
_GAP_NUMERAL = 0.03  # seconds of silence between numerals
_GAP_WORDS = 0.08  # between a run of numerals and words
_PAUSE = 0.25  # a segment of punctuation alone


class PromptError(Exception):
    """Audio could not be produced (a tool is missing or failed)."""


class PromptLibrary:
    def __init__(self, recorded_dir: Path, cache_dir: Path, voice: str = "cmn", speed: int = 190) -> None:
        self.recorded_dir, self.cache_dir = recorded_dir, cache_dir
        self.voice, self.speed = voice, speed
        self._locks: dict[str, asyncio.Lock] = {}
        self._spoken_dir: Path | None = None

    @staticmethod
    def check_tools() -> None:
        missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
        if missing:
            raise PromptError(f"{' and '.join(missing)} not installed (scripts/setup.sh installs them)")

    async def audio(self, text: str, prompt_id: str | None = None) -> Path:
        """The WAV file to play for this prompt: recorded if there is one, else synthesized.

        A prompt filled in for this call that speaks numbers is composed (see the module's doc)."""
        if prompt_id:
            recorded = self.recorded_dir / f"{prompt_id}.wav"
            if recorded.is_file():
                key = hashlib.sha1(f"rec|{recorded}|{recorded.stat().st_mtime_ns}".encode()).hexdigest()
                return await self._cached(key, lambda out: self._convert(recorded, out))
        elif SPOKEN_NUMBER.search(text):
            return await self.compose(text)
        return await self._words(text)

    async def _words(self, text: str, trim: bool = False) -> Path:
        key = hashlib.sha1(f"tts|{self.voice}|{self.speed}|{'trim|' if trim else ''}{text}".encode()).hexdigest()
        return await self._cached(key, lambda out: self._synthesize(text, out, trim))

    async def numeral(self, char: str) -> Path:
        """One numeral or money unit, trimmed of silence: the pieces composed prompts are made of."""
        if len(char) != 1 or char not in NUMERALS + UNITS:
            raise ValueError(f"not a numeral: {char!r}")
        return await self._words(char, trim=True)

    async def prepare_numerals(self) -> None:
        """Synthesize every numeral now, so that no call waits for one (and the cache stops growing)."""
        for char in NUMERALS + UNITS:
            await self.numeral(char)

    async def compose(self, text: str) -> Path:
        """The text as one WAV made of cached pieces, written outside the cache for this playback only."""
        pieces: list[bytes] = []
        position = 0
        for match in SPOKEN_NUMBER.finditer(text):
            await self._append_words(text[position:match.start()], pieces)
            for index, char in enumerate(match.group()):
                if index:
                    pieces.append(_silence(_GAP_NUMERAL))
                pieces.append(await asyncio.to_thread(_frames, await self.numeral(char)))
            position = match.end()
        await self._append_words(text[position:], pieces)
        return await asyncio.to_thread(self._write_spoken, b"".join(pieces))

    async def _append_words(self, words: str, pieces: list[bytes]) -> None:
        if not words:
            return
        if _SPEAKABLE.search(words):
            if pieces:
                pieces.append(_silence(_GAP_WORDS))
            pieces.append(await asyncio.to_thread(_frames, await self._words(words)))
            pieces.append(_silence(_GAP_WORDS))
        else:
            pieces.append(_silence(_PAUSE))

    def spoken_dir(self) -> Path:
        """This process's private directory for composed prompts: in memory where /dev/shm exists."""
        if self._spoken_dir is None:
            shm = Path("/dev/shm")
            base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
            self._spoken_dir = Path(tempfile.mkdtemp(prefix="hotline-spoken-", dir=base))  # 0700
            atexit.register(shutil.rmtree, self._spoken_dir, True)
        return self._spoken_dir

    def _write_spoken(self, pcm: bytes) -> Path:
        folder = self.spoken_dir()
        old = time.time() - SPOKEN_SECONDS
        for stale in folder.glob("*.wav"):
            with contextlib.suppress(FileNotFoundError):
                if stale.stat().st_mtime < old:
                    stale.unlink()
        path = folder / f"{uuid.uuid4().hex}.wav"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(pcm)
        return path

    def close(self) -> None:
        """Remove the composed prompts' directory (also done at exit)."""
        if self._spoken_dir is not None:
            shutil.rmtree(self._spoken_dir, ignore_errors=True)
            self._spoken_dir = None

    async def _cached(self, key: str, make: Callable[[Path], Awaitable[None]]) -> Path:
        path = self.cache_dir / key[:2] / f"{key}.wav"
        if path.exists():
            return path
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.wav")
                await make(tmp)
                tmp.replace(path)  # atomic: a half-written file is never played
        self._locks.pop(key, None)
        return path

    async def _synthesize(self, text: str, out: Path, trim: bool = False) -> None:
        raw = out.with_suffix(".raw.wav")
        try:
            await _run("espeak-ng", "-v", self.voice, "-s", str(self.speed), "-w", str(raw), "--", text)
            await self._convert(raw, out, trim)
        finally:
            raw.unlink(missing_ok=True)

    @staticmethod
    async def _convert(source: Path, out: Path, trim: bool = False) -> None:
        # trim: silence cut from both ends, so numerals joined together sound like one number
        effects = ["silence", "1", "0.01", "-45d", "reverse", "silence", "1", "0.01", "-45d", "reverse"] if trim else []
        await _run("sox", str(source), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                   str(out), *effects, "norm", "-3")


def _frames(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes())


def _silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


async def _run(*argv: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError as exc:
        raise PromptError(f"{argv[0]} is not installed (scripts/setup.sh installs it)") from exc
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise PromptError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-300:]}")
