"""What every part of the running service shares, built once at start."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hotline.callbacks.answers import SurveyWords, load_survey_words
from hotline.config import Config
from hotline.conversations.bot_queue import BotQueue
from hotline.events import EventBus
from hotline.incidents.rules import IncidentRules, WatchWords, load_incident_rules, load_watch_words
from hotline.messages import Messages, load_messages
from hotline.rasa.client import RasaClient
from hotline.tickets.calendar import load_calendar
from hotline.tickets.routing import Router, load_routing
from models.base import utcnow
from models.db import create_engine, read_only, session_factory


@dataclass
class AppContext:
    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]  # for changes: one transaction each
    readers: async_sessionmaker[AsyncSession]  # for reads only
    router: Router
    messages: Messages  # the catalogue of what residents hear and read
    survey_words: SurveyWords  # how residents answer the callback survey
    incident_rules: IncidentRules  # when reports cluster into an incident, and the areas' address words
    watch_words: WatchWords  # public-opinion watch (舆情)
    bus: EventBus  # this process's committed changes; side effects that must run once hang off it
    live: EventBus  # what consoles hear: `bus` plus, on PostgreSQL, the other processes' events
    origin: str  # this process's name on the NOTIFY channel
    clock: Callable[[], dt.datetime] = utcnow
    bot: RasaClient | None = None
    bot_queue: BotQueue = field(default_factory=lambda: BotQueue(8, 200))  # requests to Rasa: bounded, in turn
    channels: dict[str, Any] = field(default_factory=dict)  # name -> hotline.channels.base.Channel
    # Components report here for /healthz: name -> callable returning (up, detail).
    health_checks: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def today(self) -> dt.date:
        return self.router.calendar.local_date(self.clock())


def build_context(config: Config, clock: Callable[[], dt.datetime] = utcnow) -> AppContext:
    calendar = load_calendar(config.path(config.service.calendar_file))
    router = load_routing(config.path(config.service.routing_file), calendar)
    router.callback_expire_working_days = config.callback.expire_working_days
    messages = load_messages(config.path(config.service.messages_file))
    survey_words = load_survey_words(config.path(config.callback.answers_file))
    incident_rules = load_incident_rules(config.path(config.service.incidents_file), set(router.spec.business_types))
    watch_words = load_watch_words(config.path(config.service.watch_words_file))
    engine = create_engine(config.database_url, echo=config.database.echo)
    bus, live = EventBus(), EventBus()
    bus.subscribe(live.publish)
    origin = uuid.uuid4().hex
    sessions = session_factory(engine)
    info: dict[str, Any] = {"bus": bus}
    if engine.dialect.name == "postgresql":
        info["notify_origin"] = origin
    sessions.configure(info=info)
    readers = session_factory(read_only(engine))
    return AppContext(config=config, engine=engine, sessions=sessions, readers=readers, router=router,
                      messages=messages, survey_words=survey_words, incident_rules=incident_rules,
                      watch_words=watch_words,
                      bus=bus, live=live, origin=origin, clock=clock,
                      bot_queue=BotQueue(config.bot.concurrency, config.bot.queue_size))
