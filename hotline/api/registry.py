"""Routes declared once: the aiohttp route and its OpenAPI description come from here."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from hotline.actors import Actor
from hotline.channels import registry as channels
from hotline.context import AppContext
from models import StaffSession

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


def path_id(request: web.Request, what: str) -> int:
    """The numeric {id} of the path; anything else is a 404 for `what` (e.g. "conversation")."""
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "not_found", f"no such {what}") from None


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
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_input", "the request has invalid fields", _validation_details(exc)) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ApiError(422, "invalid_query", "the query has invalid parameters", _validation_details(exc)) from None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))
