"""The WeChat official account: /wechat push endpoint and the customer-service message API."""
from __future__ import annotations

from aiohttp import web

from hotline.channels.base import ChannelInfo
from hotline.channels.registry import register
from hotline.channels.wechat import views
from hotline.channels.wechat.channel import WeChatChannel
from hotline.context import AppContext


class WeChatPlugin:
    info = ChannelInfo(name="wechat", label="微信", sends=frozenset({"text", "template", "link"}),
                       identifies_by="openid")
    config = None  # [wechat] is part of hotline.config.Config (its settings predate plug-in sections)

    def setup(self, app: web.Application, ctx: AppContext) -> WeChatChannel | None:
        return views.setup(app, ctx)


register(WeChatPlugin())
