"""Routes declared once: the aiohttp route and its OpenAPI description come from here."""
from __future__ import annotations

import datetime as dt
import json
import re
import types
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.api.field_labels import labelled
from hotline.channels import registry as channels
from hotline.context import AppContext
from models import Base, StaffSession

CTX = web.AppKey("ctx", AppContext)
ACTOR = web.RequestKey("actor", Actor)
STAFF_SESSION = web.RequestKey("staff_session", StaffSession)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

ALL_STAFF = frozenset({"agent", "supervisor", "department", "admin"})
STAFF_AND_SERVICE = ALL_STAFF | {"service"}
AGENTS = frozenset({"agent", "supervisor", "admin"})  # who talks with residents


# A channel's name, checked against the channel registry when a request arrives; the OpenAPI
# builder turns the marker into the enum of the channels registered at that moment.
ENUM_FROM_CHANNELS = "x-enum-from-channels"
ChannelName = Annotated[str, AfterValidator(channels.check_name), Field(json_schema_extra={ENUM_FROM_CHANNELS: True})]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


@dataclass
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    roles: frozenset[str] | None  # None: no sign-in needed
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = field(default_factory=tuple)

    def error_statuses(self) -> list[int]:
        """Every error status the route can answer, so the OpenAPI declares them all: the route's own,
        and those the shared doors give (sign-in and role, JSON and its fields, the {id} of the path)."""
        found = set(self.errors)
        if self.roles is not None:
            found |= {401, 403}  # no or a bad sign-in; a role not allowed, or a session without its CSRF token
        if self.body is not None:
            found |= {400, 413, 422}  # not JSON, too large, invalid fields
        if self.query is not None:
            found.add(422)
        if re.search(r"{\w+}", self.path):
            found.add(404)
        return sorted(found)


ROUTES: list[RouteSpec] = []


def route(method: str, path: str, summary: str, *, tag: str, roles: frozenset[str] | None = STAFF_AND_SERVICE,
          body: type[BaseModel] | None = None, query: type[BaseModel] | None = None, status: int = 200,
          errors: tuple[int, ...] = ()) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(RouteSpec(method, path, handler, summary, tag, roles, body, query, status, errors))
        return handler
    return register


def ctx_of(request: web.Request) -> AppContext:
    return request.app[CTX]


def actor_of(request: web.Request) -> Actor:
    return request[ACTOR]


# Times staff type (an outage's start, a restore time, an extension's new due time): an offset is honoured; a time
# without one is the utility's local time (the working-day calendar's zone), never the browser's or the server's.
LOCAL_TIME = "ISO 8601; without an offset, the utility's local time (the calendar's time zone)"


def utility_time(ctx: AppContext, value: dt.datetime) -> dt.datetime:
    """A typed time: as sent when it has an offset, else read in the utility's zone (LOCAL_TIME)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=ctx.router.calendar.timezone)


# The store's integers (ids, counts) are PostgreSQL INTEGERs, 32-bit (SQLite's hold 64): a number past them in a
# query or body is invalid input (422), never the driver's overflow error (500). The OpenAPI says so too.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def path_id(request: web.Request, what: str) -> int:
    """The numeric {id} of the path; anything else is a 404 for `what` (e.g. "conversation")."""
    try:
        value = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "not_found", f"no such {what}") from None
    if not INT_MIN <= value <= INT_MAX:
        raise ApiError(404, "not_found", f"no such {what}")
    return value


@dataclass(frozen=True)
class RowOf:
    """Marks an id field of a body as naming a row of `model` (Annotated[int | None, RowOf(Conversation,
    "conversation")]): check_rows answers a missing row with a 422 naming the field, where the insert
    would have failed on the foreign key (a 500)."""
    model: type[Base]
    what: str


async def check_rows(session: AsyncSession, body: BaseModel) -> None:
    """Every RowOf field of `body` that is set names a row that exists; else a 422 naming the fields."""
    missing = []
    for name, info in type(body).model_fields.items():
        marker = next((m for m in info.metadata if isinstance(m, RowOf)), None)
        value = getattr(body, name)
        if marker is not None and value is not None and await session.get(marker.model, value) is None:
            missing.append({"field": name, "message": f"no such {marker.what}"})
    if missing:
        raise ApiError(422, "no_such_row", "the request names rows that do not exist", missing)


def _unstorable(value: Any, path: str) -> Iterator[dict[str, str]]:
    """Values a valid model may hold that the store cannot: integers past its 32 bits, and NUL characters
    (PostgreSQL's text refuses them)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        yield {"field": path, "message": "the number is out of range"}
    elif isinstance(value, str) and "\x00" in value:
        yield {"field": path, "message": "the text contains a NUL character"}
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _unstorable(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unstorable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{path}.{index}" if path else str(index))


def _kinds(annotation: Any) -> set[Any]:
    """The types a field's annotation allows, None left out; `object` for anything not a plain class
    (a Literal, a list[...]), which _json_mismatches leaves to pydantic."""
    if get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(_kinds(arg) for arg in get_args(annotation)))
    if get_origin(annotation) is Annotated:
        return _kinds(get_args(annotation)[0])
    if annotation is type(None):
        return set()
    return {annotation} if isinstance(annotation, type) else {object}


def _iso(text: Any, kind: type[dt.date]) -> bool:
    try:
        kind.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return True


def _json_mismatches(model: type[BaseModel], data: dict[str, Any], *, query: bool) -> Iterator[dict[str, str]]:
    """Values pydantic's lax mode would coerce that the OpenAPI (JSON Schema) calls invalid: a boolean or a
    string for a number, a number for a boolean, a number for a date (a Unix time), a date not in ISO 8601.
    A query's values are all text: only its dates are checked here."""
    for name, info in model.model_fields.items():
        raw = data.get(info.alias or name)
        kinds = _kinds(info.annotation)
        plain = bool(kinds) and object not in kinds and (len(kinds) == 1 or kinds <= {int, float})
        if raw is None or not plain:
            continue
        kind = next(iter(kinds)) if len(kinds) == 1 else float
        if issubclass(kind, dt.date):
            ok = isinstance(raw, str) and _iso(raw, dt.datetime if issubclass(kind, dt.datetime) else dt.date)
        elif query:
            continue
        elif kind is bool:
            ok = isinstance(raw, bool)
        elif kind is int:
            ok = not isinstance(raw, bool) and (isinstance(raw, int) or isinstance(raw, float) and raw.is_integer())
        elif kind is float:
            ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        else:
            continue
        if not ok:
            yield {"field": name, "message": f"not a valid {kind.__name__} in JSON"
                   if not issubclass(kind, dt.date) else f"not an ISO 8601 {kind.__name__}"}


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]


async def parse_body(request: web.Request, model: type[M]) -> M:
    try:
        raw = await request.read()
        data = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", "the request has invalid fields",
                       labelled(model, _validation_details(exc))) from None
    if problems := [*_json_mismatches(model, data, query=False), *_unstorable(parsed, "")]:
        raise ApiError(422, "invalid_input", "the request has invalid fields", labelled(model, problems))
    return parsed


def parse_query(request: web.Request, model: type[M]) -> M:
    data = dict(request.query)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_query", "the query has invalid parameters",
                       labelled(model, _validation_details(exc))) from None
    if problems := [*_json_mismatches(model, data, query=True), *_unstorable(parsed, "")]:
        raise ApiError(422, "invalid_query", "the query has invalid parameters", labelled(model, problems))
    return parsed


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))
