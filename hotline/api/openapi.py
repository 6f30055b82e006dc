"""/api/openapi.json, built from the route registry and the pydantic models."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hotline.api.registry import ENUM_FROM_CHANNELS, INT_MAX, INT_MIN, ROUTES, json_response
from hotline.channels import registry as channels

ERROR_TEXT = {400: "Malformed request", 401: "Not signed in / bad token", 403: "Not allowed",
              404: "Not found", 409: "Not allowed in the ticket's current status",
              413: "The request body is too large", 422: "Invalid input", 429: "Locked after repeated failures"}


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")


def _channel_enums(node: Any, names: list[str]) -> Any:
    """Replace the channel marker of ChannelName fields with the channels registered now."""
    if isinstance(node, dict):
        if node.pop(ENUM_FROM_CHANNELS, False):
            node["enum"] = names
        for value in node.values():
            _channel_enums(value, names)
    elif isinstance(node, list):
        for value in node:
            _channel_enums(value, names)
    return node


NO_NUL = "^[^\\u0000]*$"


def _storable(node: Any) -> Any:
    """Say what the API checks of every value (registry._unstorable) where the model did not: integers
    within 32 bits (what the store holds), text without NUL characters (PostgreSQL refuses them), so a
    client or a fuzzer knows such a value is invalid input."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = INT_MIN
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = INT_MAX
        elif node.get("type") == "string" and not {"format", "enum", "const"} & node.keys():
            if "pattern" in node:  # the model's own pattern stays; both must match
                node.setdefault("allOf", []).append({"pattern": NO_NUL})
            else:
                node["pattern"] = NO_NUL
        for value in node.values():
            _storable(value)
    elif isinstance(node, list):
        for value in node:
            _storable(value)
    return node


# What str_strip_whitespace strips (pydantic-core's trim: Unicode's White_Space property), as a regex class.
BLANK = "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def _model_schema(model: type[BaseModel], **kwargs: Any) -> dict[str, Any]:
    """The model's JSON Schema, saying what its validation does that pydantic's schema leaves out: with
    str_strip_whitespace, a minimum length counts after the blanks around the text are stripped (" " is
    not one character of text)."""
    schema = model.model_json_schema(**kwargs)
    if model.model_config.get("str_strip_whitespace"):
        for prop in schema.get("properties", {}).values():
            for node in [prop, *prop.get("anyOf", [])]:
                least = node.get("minLength", 0) if node.get("type") == "string" else 0
                if least == 1:  # some text that is not blank
                    node.setdefault("allOf", []).append({"pattern": f"[^{BLANK}]"})
                elif least:  # from the first to the last character that is not blank, at least `least`
                    text = f"[^{BLANK}][\\s\\S]{{{least - 2},}}[^{BLANK}]"
                    node.setdefault("allOf", []).append({"pattern": f"^[{BLANK}]*{text}[{BLANK}]*$"})
    return schema


def _path_parameter(name: str) -> dict[str, Any]:
    # {id} is a row's number (registry.path_id: anything else is a 404); other names are text.
    schema: dict[str, Any] = {"type": "integer"} if name == "id" else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def build_openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "details": {"type": "array", "items": {"type": "object"}}}}}},
    }
    for spec in ROUTES:
        op: dict[str, Any] = {"summary": spec.summary, "tags": [spec.tag],
                              "operationId": f"{spec.method.lower()}_{_slug(spec.path)}"}
        params = [_path_parameter(name) for name in re.findall(r"{(\w+)}", spec.path)]
        if spec.query is not None:
            query_schema = _model_schema(spec.query)
            required = set(query_schema.get("required", ()))
            for name, prop in query_schema["properties"].items():
                params.append({"name": name, "in": "query", "required": name in required, "schema": prop,
                               **({"description": prop["description"]} if "description" in prop else {})})
        if params:
            op["parameters"] = params
        if spec.body is not None:
            schema = _model_schema(spec.body, ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[spec.body.__name__] = schema
            # A body whose fields all have defaults may be left out (registry.parse_body reads none as {}).
            op["requestBody"] = {"required": bool(schema.get("required")), "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}}}}
        op["responses"] = {str(spec.status): {"description": "OK",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}
        for status in spec.error_statuses():
            op["responses"][str(status)] = {"description": ERROR_TEXT.get(status, "Error"), "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if spec.roles is not None:
            op["security"] = [{"session": []}, {"bearer": []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = op
    document = {
        "openapi": "3.1.0",
        "info": {"title": "hotline API", "version": "1.0",
                 "description": "Tickets, customers, conversations and calls of the water utility's hotline."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "hotline_session",
                        "description": "Staff session from POST /api/auth/login; state changes need X-CSRF-Token."},
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "Service token (HOTLINE_API_SERVICE_TOKEN)"}}},
    }
    return _storable(_channel_enums(document, list(channels.names())))


async def openapi_view(request: web.Request) -> web.Response:
    return json_response(build_openapi())
