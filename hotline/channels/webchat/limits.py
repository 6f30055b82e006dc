"""How often one network address may open web-chat sockets and send messages ([web] section).

Anyone can open the chat, so a script could open sockets and send messages without end; these limits
keep one address to what a person (or an office behind one address) does. Counted in this process's
memory, like the sign-in throttle: with several service processes each counts on its own.
"""
from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from hotline.auth.throttle import address_key


@dataclasses.dataclass
class WebChatConfig:
    """[web]: the web chat's own settings (HOTLINE_WEB_<KEY>)."""

    connections_per_minute: int = 30  # new sockets from one address; more get HTTP 429
    messages_per_minute: int = 60  # messages from one address over all its sockets; more are refused politely


class RateLimit:
    """At most `limit` events per `window` seconds per key (a sliding window), for at most `max_keys` keys
    (the least recently seen forgotten first)."""

    def __init__(self, window: float = 60.0, max_keys: int = 50_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.window, self.max_keys, self.now = window, max_keys, now
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, address: str, limit: int) -> bool:
        """Count one event from `address`; False (not counted) when it already had `limit` in the window."""
        key, now = address_key(address), self.now()
        times = self._seen.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._seen[key] = times
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        if len(times) >= limit:
            return False
        times.append(now)
        return True
