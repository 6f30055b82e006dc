"""The service hall's counter (柜台): tickets staff enter for residents who come in person."""
from __future__ import annotations

from aiohttp import web

from hotline.channels.base import ChannelInfo
from hotline.channels.registry import register
from hotline.context import AppContext


class CounterPlugin:
    info = ChannelInfo(name="counter", label="柜台", sends=frozenset(), identifies_by="staff entry",
                       conversations=False)
    config = None

    def setup(self, app: web.Application, ctx: AppContext) -> None:
        return None  # nothing comes in or goes out by itself: staff enter these tickets in the console


register(CounterPlugin())
