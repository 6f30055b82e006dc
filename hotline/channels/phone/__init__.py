"""The telephone: residents' calls reach the voice menu (hotline/ivr) over SIP.

The IVR engine, its SIP stack and flows live in hotline/ivr/; this plug-in
starts it with the service and tells the rest of the service that tickets and
call records may come from the phone.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hotline.channels.base import ChannelInfo
from hotline.channels.registry import register
from hotline.context import AppContext


class PhonePlugin:
    info = ChannelInfo(name="phone", label="电话", sends=frozenset({"voice"}), identifies_by="caller number",
                       conversations=False)
    config = None  # the IVR's settings are [sip]

    def setup(self, app: web.Application, ctx: AppContext) -> None:
        async def ivr(_: web.Application) -> AsyncIterator[None]:
            """The voice menu over SIP; a bad flow file stops the start with the file and line."""
            if not ctx.config.sip.enabled:
                yield
                return
            from hotline.ivr.service import IvrService  # the IVR's imports only where it runs
            service = IvrService(ctx)
            await service.start()
            ctx.health_checks["sip"] = service.status
            yield
            await service.stop()

        async def dialler(_: web.Application) -> AsyncIterator[None]:
            """The outbound dialler ([outbound]): callback surveys and outage notices by telephone."""
            from hotline.ivr.outbound.jobs import dialler_enabled
            if not dialler_enabled(ctx.config):
                yield
                return
            from hotline.ivr.outbound.dialler import Dialler  # pyVoIP is imported only where it runs
            outbound = Dialler(ctx)
            await outbound.start()
            ctx.health_checks["outbound"] = outbound.status
            ctx.health_checks["dialler"] = outbound.runs  # its sweeps for due calls
            yield
            await outbound.stop()

        app.cleanup_ctx.append(ivr)
        app.cleanup_ctx.append(dialler)


register(PhonePlugin())
