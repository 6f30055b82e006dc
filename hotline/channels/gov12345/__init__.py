"""The city's 12345 hotline as a channel: its work orders become tickets, our steps go back to it.

Active once [gov12345] inbound_secret is set (HOTLINE_GOV12345_INBOUND_SECRET); until then
its endpoints answer 404. What we send is signed with outbound_secret, a different key.
The exchange itself is hotline/integrations/gov12345/; this plug-in brings its settings,
its routes and the outbox worker.
"""
from __future__ import annotations

import dataclasses

from aiohttp import web

from hotline.channels.base import ChannelInfo
from hotline.channels.registry import register
from hotline.config import ConfigError
from hotline.context import AppContext
from hotline.integrations.gov12345 import adapter


@dataclasses.dataclass
class Gov12345Config:
    """[gov12345]: the two shared secrets, the platform's address, and the outbox's patience."""

    # HMAC-SHA256 keys shared with 12345, one per direction (never the same: a message we sent must not
    # verify as one 12345 pushed). inbound_secret checks its pushes (empty: the exchange is off, 404);
    # outbound_secret signs our messages to it (empty: nothing is sent).
    inbound_secret: str = ""
    outbound_secret: str = ""
    base_url: str = ""  # where our messages go: POST {base_url}/{sign|progress|reply|extension|return}
    mapping_file: str = "config/gov12345.yml"  # field names, 诉求类型 → business type, words
    max_age_seconds: int = 300  # a push's X-Timestamp must be this recent (either way); a repeat is refused
    timeout_seconds: float = 10.0  # one delivery attempt
    # The outbox (hotline/integrations/outbox.py): one worker per process for every integration.
    worker: bool = True
    worker_interval_seconds: float = 5.0  # also woken at once by every new message
    max_attempts: int = 15  # then a message is failed and shown to admins in the console
    backoff_seconds: float = 5.0  # first retry; doubling each time …
    backoff_max_seconds: float = 1800.0  # … up to this
    concurrency: int = 16  # messages in flight at once (different order numbers)


def check(cfg: Gov12345Config) -> None:
    """Refuse at start one key for both directions: our own 办结回复 would then pass as 12345's push."""
    if cfg.inbound_secret and cfg.inbound_secret == cfg.outbound_secret:
        raise ConfigError("[gov12345] inbound_secret and outbound_secret must differ")


class Gov12345Plugin:
    info = ChannelInfo(name=adapter.CHANNEL, label="12345热线", sends=frozenset(), identifies_by="12345 order number",
                       conversations=False)
    config = Gov12345Config

    def setup(self, app: web.Application, ctx: AppContext) -> None:
        from hotline.channels.gov12345 import views  # the views import the API's registry

        adapter.install()
        cfg = ctx.config.channels.setdefault(self.info.name, Gov12345Config())  # a Config() built in code has none
        check(cfg)
        views.setup(app, ctx)


register(Gov12345Plugin())
adapter.install()  # the lifecycle hooks hold for every process that imports the channels, app or not
