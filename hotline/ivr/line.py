"""What the flow engine needs from one telephone call.

The SIP layer implements it; tests drive the engine through a scripted line.
Every method raises CallerHungUp once the caller has gone, so a flow never
plays to an empty line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol


class CallerHungUp(Exception):
    """The caller hung up (or the line dropped) while the flow was running.

    `partial` holds the keys pressed in the collect that was cut short, so the
    call record keeps every digit the caller pressed; `failed` says the line
    itself failed (the media could not go on), so the call is recorded as failed."""

    def __init__(self, partial: str = "", failed: bool = False) -> None:
        super().__init__("the line failed" if failed else "caller hung up")
        self.partial, self.failed = partial, failed


class CallLine(Protocol):
    call_id: str
    caller: str  # the number from the From header
    callee: str

    async def play(self, audio: Path, interruptible: bool = True) -> str:
        """Play a WAV prompt; returns the key pressed during it ('' if none), which stops the prompt."""
        ...

    async def collect(self, max_digits: int, terminator: str, timeout: float, already: str = "") -> str:  # noqa: ASYNC109
        """Keys until max_digits, the terminator (included) or `timeout` seconds of silence."""
        ...

    async def record(self, path: Path, max_seconds: int) -> float:
        """Record the caller to a WAV file until '#', silence at the end or max_seconds; returns seconds kept."""
        ...

    async def transfer(self, uri: str) -> bool:
        """Hand the call to another SIP URI (REFER); True when the far end accepted it."""
        ...

    async def hangup(self) -> None:
        ...
