"""Push freshness: a WeChat push's timestamp must be recent and its nonce new.

In plaintext mode the signature covers only token, timestamp and nonce, not the
body, so a captured query could carry any body; in every mode a captured push
could be sent again. Refusing timestamps outside a window closes the first for
old captures, remembering the nonces seen inside that window closes both.

The nonces are kept in this process's memory. A nonce is forgotten once its
push could no longer pass the timestamp check anyway, and the memory is
bounded: when it is full, the oldest nonce is dropped and every timestamp up to
the dropped one's is refused from then on, so dropping never reopens a replay.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class ReplayGuard:
    def __init__(self, max_age_seconds: int, max_nonces: int = 100_000,
                 now: Callable[[], float] = time.time) -> None:
        self.max_age = max_age_seconds
        self.max_nonces = max_nonces
        self.now = now
        # nonce -> (forget at, the push's timestamp); insertion order is forget order.
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._floor = -1  # timestamps at or below this are refused: their nonces were dropped early

    def fresh(self, timestamp: str) -> int | None:
        """The timestamp as an int when it is within the window (past or future), else None."""
        try:
            value = int(timestamp)
        except ValueError:
            return None
        if abs(self.now() - value) > self.max_age or value <= self._floor:
            return None
        return value

    def first_use(self, timestamp: int, nonce: str) -> bool:
        """Record a nonce of a push whose signature was verified; False when it was seen before.

        Call only after the signature check, so forged requests cannot fill the memory.
        """
        now = self.now()
        while self._seen:
            nonce_0, (forget_at, _) = next(iter(self._seen.items()))
            if forget_at > now:
                break
            del self._seen[nonce_0]
        if not nonce or nonce in self._seen:
            return False
        # The push passed |now - timestamp| <= max_age, so it stops passing by now + 2 * max_age.
        self._seen[nonce] = (now + 2 * self.max_age, timestamp)
        while len(self._seen) > self.max_nonces:
            _, (_, dropped_timestamp) = self._seen.popitem(last=False)
            self._floor = max(self._floor, dropped_timestamp)
        return True

    def __len__(self) -> int:
        return len(self._seen)
