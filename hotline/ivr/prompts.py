"""Prompt audio: 8 kHz mono 16-bit WAV files, recorded or synthesized, cached on disk.

A recorded file `<prompt id>.wav` in the prompt directory (any rate or format
sox reads) overrides the text for prompts without placeholders. Everything
else is synthesized from its Mandarin text with espeak-ng and converted with
sox, once: the cache key is a hash of the voice, speed and text.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

RATE = 8000


class PromptError(Exception):
    """Audio could not be produced (a tool is missing or failed)."""


class PromptLibrary:
    def __init__(self, recorded_dir: Path, cache_dir: Path, voice: str = "cmn", speed: int = 190) -> None:
        self.recorded_dir, self.cache_dir = recorded_dir, cache_dir
        self.voice, self.speed = voice, speed
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def check_tools() -> None:
        missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
        if missing:
            raise PromptError(f"{' and '.join(missing)} not installed (scripts/setup.sh installs them)")

    async def audio(self, text: str, prompt_id: str | None = None) -> Path:
        """The WAV file to play for this prompt: recorded if there is one, else synthesized."""
        if prompt_id:
            recorded = self.recorded_dir / f"{prompt_id}.wav"
            if recorded.is_file():
                key = hashlib.sha1(f"rec|{recorded}|{recorded.stat().st_mtime_ns}".encode()).hexdigest()
                return await self._cached(key, lambda out: self._convert(recorded, out))
        key = hashlib.sha1(f"tts|{self.voice}|{self.speed}|{text}".encode()).hexdigest()
        return await self._cached(key, lambda out: self._synthesize(text, out))

    async def _cached(self, key: str, make) -> Path:
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

    async def _synthesize(self, text: str, out: Path) -> None:
        raw = out.with_suffix(".raw.wav")
        try:
            await _run("espeak-ng", "-v", self.voice, "-s", str(self.speed), "-w", str(raw), "--", text)
            await self._convert(raw, out)
        finally:
            raw.unlink(missing_ok=True)

    @staticmethod
    async def _convert(source: Path, out: Path) -> None:
        await _run("sox", str(source), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                   str(out), "norm", "-3")


async def _run(*argv: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError as exc:
        raise PromptError(f"{argv[0]} is not installed (scripts/setup.sh installs it)") from exc
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise PromptError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-300:]}")
