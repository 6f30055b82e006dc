"""Every setting checked once, when the configuration is loaded: a bad one stops the start and names its key.

A setting that parses but cannot work ("25:00-08:00" calling hours, a negative interval, a
routing file that is not there) would otherwise start a service whose health checks are all up
while a scheduler fails on it every interval. The rules go by a setting's type and name, so a
section added later (a channel plug-in's too) is covered without a line here:

- numbers are never negative; ones that are an interval, a timeout, a count or a size are above 0;
- a `port` is 1-65535, and `*_min` is not above its `*_max`; `hour` is 0-23;
- text `*_hours` is a time window HH:MM-HH:MM in the service's time zone (24:00 ends the day);
- `*_file` is an existing file and `*_dir` an existing directory (var_dir excepted: it is created),
  unless the section is disabled;
- `url` and `*_url` are empty or scheme://…; `allowed*`, `*_peers`, `*_proxies` are addresses or
  CIDR networks; `*registrar` is host[:port]; `timezone` is a known IANA zone.

Then each section's own `check()` (rules between settings: [bot] workers, [privacy], [retention] …).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import ipaddress
import re
import typing
import zoneinfo
from pathlib import Path

if typing.TYPE_CHECKING:
    from hotline.config import Config

# Names of numbers that must be above zero: how often, how long to wait, how many, how big.
_POSITIVE = re.compile(r"interval|timeout|concurrency|lines|workers|size|batch|attempts|expire|per_hour"
                       r"|per_source|lifetime|^max_|_valid_|session_hours")
_PORT = re.compile(r"(^|_)port(_|$)")
_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*-\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _error(message: str) -> Exception:
    from hotline.config import ConfigError  # config.py imports this module
    return ConfigError(message)


def _clock(text: str) -> dt.time:
    """"8:00" or "08:00:30" → a time of day."""
    hour, rest = text.split(":", 1)
    return dt.time.fromisoformat(f"{int(hour):02d}:{rest}")


def time_window(spec: str, name: str) -> tuple[dt.time, dt.time]:
    """"08:00-21:00" → (08:00, 21:00); "00:00-24:00" is the whole day (24:00 is read as the day's last instant)."""
    match = _WINDOW.match(spec)
    try:
        if match is None:
            raise ValueError(spec)
        start = _clock(match[1])
        end = dt.time.max if match[2] in ("24:00", "24:00:00") else _clock(match[2])
    except ValueError:
        raise _error(f"{name}: expected HH:MM-HH:MM (00:00 to 24:00), got {spec!r}") from None
    if start >= end:
        raise _error(f"{name}: {spec!r} ends before it starts (a window past midnight is not supported)")
    return start, end


def _number(name: str, key: str, value: float) -> None:
    if key == "hour" and not 0 <= value <= 23:
        raise _error(f"{name}: expected an hour of the day, 0 to 23, got {value}")
    if _PORT.search(key) and not 1 <= value <= 65535:
        raise _error(f"{name}: expected a port, 1 to 65535, got {value}")
    if value < 0:
        raise _error(f"{name}: expected 0 or more, got {value}")
    if value == 0 and _POSITIVE.search(key):
        raise _error(f"{name}: expected more than 0, got {value}")


def _text(name: str, key: str, value: str, enabled: bool, root: Path) -> None:
    if key.endswith("_hours"):
        time_window(value, name)
    elif key == "timezone":
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _error(f"{name}: expected a time zone such as Asia/Shanghai, got {value!r}") from None
    elif (key == "url" or key.endswith("_url")) and value and not _URL.match(value):
        raise _error(f"{name}: expected scheme://…, got {value!r}")
    elif key.endswith("registrar") and value:
        host, colon, port = value.rpartition(":")
        if not colon:
            host, port = value, "5060"
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise _error(f"{name}: expected host:port, got {value!r}")
    elif key.startswith("allowed") or key.endswith(("_peers", "_proxies")):
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise _error(f"{name}: expected comma-separated addresses or CIDR networks, got {part!r}") from None
    elif enabled and key.endswith(("_file", "_dir")) and key != "var_dir":
        path = Path(value) if Path(value).is_absolute() else root / value
        wanted = "file" if key.endswith("_file") else "directory"
        if not (path.is_file() if wanted == "file" else path.is_dir()):
            raise _error(f"{name}: no such {wanted}: {path}")


def check_section(section_name: str, section: typing.Any, root: Path, database_url: str = "") -> None:
    """One section's settings, by type and name, then its own check()."""
    hints = typing.get_type_hints(type(section))
    fields = [f.name for f in dataclasses.fields(section)]
    enabled = bool(getattr(section, "enabled", True))
    for key in fields:
        value, name = getattr(section, key), f"[{section_name}] {key}"
        kind = hints.get(key)
        if kind in (int, float) and not isinstance(value, bool):
            _number(name, key, value)
        elif kind is str:
            _text(name, key, value, enabled, root)
    for key in fields:
        if key.endswith("_min") and f"{key[:-4]}_max" in fields:
            low, high = getattr(section, key), getattr(section, f"{key[:-4]}_max")
            if low > high:
                raise _error(f"[{section_name}] {key}: {low} is above {key[:-4]}_max ({high})")
    own = getattr(section, "check", None)
    if callable(own):
        known = {"database_url": database_url}
        own(**{p: known[p] for p in inspect.signature(own).parameters if p in known})


def check_config(config: Config, sections: dict[str, typing.Any], root: Path) -> None:
    """Every section (the service's and the channel plug-ins'), then the rules between sections."""
    for name, section in sections.items():
        check_section(name, section, root, config.database_url)
    config.wechat.effective_mode()
