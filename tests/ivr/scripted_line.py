"""A telephone line driven by a script of key presses, for running flows without SIP."""
from __future__ import annotations

import itertools
import wave
from collections import deque
from pathlib import Path

from hotline.ivr.line import CallerHungUp

_numbers = itertools.count(1)
SILENCE = "_"  # in a script: the caller waits without pressing anything
HANG_UP = "!"  # in a script: the caller hangs up here


class ScriptedLine:
    def __init__(self, keys: str, caller: str = "13800138000", transfer_ok: bool = False,
                 call_id: str | None = None) -> None:
        self.keys = deque(keys)
        self.call_id = call_id or f"scripted-{next(_numbers)}"
        self.caller, self.callee = caller, "12345"
        self.transfer_ok = transfer_ok
        self.played: list[Path] = []
        self.transfers: list[str] = []
        self.hung_up = False
        self.gone = False

    def _check(self, partial: str = "") -> None:
        if self.gone:
            raise CallerHungUp(partial)
        if self.keys and self.keys[0] == HANG_UP:
            self.gone = True
            raise CallerHungUp(partial)

    async def play(self, audio: Path, interruptible: bool = True) -> str:
        if self.gone:
            raise CallerHungUp()
        assert audio.is_file(), audio  # noqa: ASYNC240
        self.played.append(audio)
        return ""

    async def collect(self, max_digits: int, terminator: str, timeout: float, already: str = "") -> str:  # noqa: ASYNC109
        got = already
        while len(got) < max_digits and not (terminator and got.endswith(terminator)):
            self._check(got)
            if not self.keys or self.keys[0] == SILENCE:
                if self.keys:
                    self.keys.popleft()
                break
            got += self.keys.popleft()
        return got

    async def record(self, path: Path, max_seconds: int) -> float:
        self._check()
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x00" * 8000)
        return 1.0

    async def transfer(self, uri: str) -> bool:
        self._check()
        self.transfers.append(uri)
        return self.transfer_ok

    async def hangup(self) -> None:
        self.hung_up = True
