"""Sign-in throttling that neither tells which names exist nor lets anyone lock a staff member out.

A lock on the account itself would let anyone lock any staff member out with
five requests, and locking only names that exist tells an attacker which do.
Instead attempts are counted per (name, client address) and per client address,
for every name alike, in this process's memory:

- five attempts at one name from one address within 15 minutes bar that pair
  for 15 minutes (the real user, signing in from their own address, is not
  affected);
- thirty attempts at any names from one address bar that address (an IPv6
  address counts as its /64, which one attacker usually holds whole).

An attempt is counted when it starts, so parallel guesses cannot slip past the
limit; a successful sign-in clears its pair and gives its attempt back to the
address (without wiping the address's count, which an attacker with an account
of their own could otherwise do between guesses). The memory holds at most
`max_entries` counters, least recently used dropped first. Several service
processes each count on their own.
"""
from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

PAIR_LIMIT = 5
ADDRESS_LIMIT = 30
WINDOW_SECONDS = 15 * 60
LOCKOUT_SECONDS = 15 * 60  # at least WINDOW_SECONDS: a lock outlasts the window it was earned in


@dataclass
class _Counter:
    attempts: int
    window_ends: float
    locked_until: float = 0.0


def address_key(address: str) -> str:
    """The unit an address is counted in: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    def __init__(self, *, pair_limit: int = PAIR_LIMIT, address_limit: int = ADDRESS_LIMIT,
                 window: float = WINDOW_SECONDS, lockout: float = LOCKOUT_SECONDS, max_entries: int = 50_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.pair_limit, self.address_limit = pair_limit, address_limit
        self.window, self.lockout = window, max(lockout, window)
        self.max_entries = max_entries
        self.now = now
        self._counters: OrderedDict[tuple[str, ...], _Counter] = OrderedDict()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        where = address_key(address)
        return ("pair", username.strip().casefold(), where), ("address", where)

    def _counter(self, key: tuple[str, ...], now: float) -> _Counter:
        counter = self._counters.get(key)
        if counter is None or (counter.window_ends <= now and counter.locked_until <= now):
            counter = _Counter(0, now + self.window)
        self._counters[key] = counter
        self._counters.move_to_end(key)
        while len(self._counters) > self.max_entries:
            self._counters.popitem(last=False)
        return counter

    def begin(self, username: str, address: str) -> float:
        """Count an attempt; or, while the pair or the address is barred, the seconds left (nothing counted)."""
        now = self.now()
        pair_key, address_key_ = self._keys(username, address)
        pair, where = self._counter(pair_key, now), self._counter(address_key_, now)
        wait = max(pair.locked_until, where.locked_until) - now
        if wait > 0:
            return wait
        pair.attempts += 1
        where.attempts += 1
        if pair.attempts >= self.pair_limit:
            pair.locked_until = now + self.lockout
        if where.attempts >= self.address_limit:
            where.locked_until = now + self.lockout
        return 0.0

    def succeeded(self, username: str, address: str) -> None:
        """The attempt was right: forget the pair, give the attempt back to the address."""
        pair_key, address_key_ = self._keys(username, address)
        self._counters.pop(pair_key, None)
        where = self._counters.get(address_key_)
        if where is not None:
            where.attempts = max(where.attempts - 1, 0)
            if where.attempts < self.address_limit:
                where.locked_until = 0.0
