"""The channels the service knows: every package under hotline/channels/ registers its plug-in.

The API's channel fields and their OpenAPI enum, /api/meta (and so the
console's labels and filters) and ticket validation all read this registry,
so adding a channel touches no other code.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from hotline.channels.base import ChannelInfo, ChannelPlugin

_PLUGINS: dict[str, ChannelPlugin] = {}
_discovered = False


def register(plugin: ChannelPlugin) -> ChannelPlugin:
    name = plugin.info.name
    if not name or len(name) > 10 or not name.isidentifier():
        raise ValueError(f"channel name {name!r}: expected a short identifier (at most 10 characters)")
    known = _PLUGINS.get(name)
    if known is not None and known is not plugin:
        raise ValueError(f"two channels are named {name!r}")
    _PLUGINS[name] = plugin
    return plugin


def unregister(name: str) -> None:
    _PLUGINS.pop(name, None)


def discover() -> None:
    """Import every channel package once; each registers itself on import."""
    global _discovered
    if _discovered:
        return
    import hotline.channels as package
    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            importlib.import_module(f"{package.__name__}.{module.name}")
    _discovered = True


def plugins() -> list[ChannelPlugin]:
    discover()
    return list(_PLUGINS.values())


def infos() -> list[ChannelInfo]:
    return [p.info for p in plugins()]


def names() -> tuple[str, ...]:
    return tuple(p.info.name for p in plugins())


def check_name(value: str) -> str:
    """For validators: a registered channel's name, or a clear error."""
    if value not in names():
        raise ValueError(f"unknown channel {value!r}; expected one of {', '.join(names())}")
    return value


def config_sections() -> dict[str, Any]:
    """Channel name → the dataclass of its own configuration section."""
    return {p.info.name: p.config for p in plugins() if p.config is not None}
