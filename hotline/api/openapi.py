"""/api/openapi.json, built from the route registry and the pydantic models."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hotline.api.registry import ENUM_FROM_CHANNELS, ROUTES, json_response
from hotline.channels import registry as channels

ERROR_TEXT = {400: "Malformed request", 401: "Not signed in / bad token", 403: "Not allowed",
              404: "Not found", 409: "Not allowed in the ticket's current status",
              422: "Invalid input", 429: "Locked after repeated failures"}


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
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", spec.path)]
        if spec.query is not None:
            for name, prop in spec.query.model_json_schema()["properties"].items():
                params.append({"name": name, "in": "query", "required": False, "schema": prop,
                               **({"description": prop["description"]} if "description" in prop else {})})
        if params:
            op["parameters"] = params
        if spec.body is not None:
            schema = spec.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[spec.body.__name__] = schema
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{spec.body.__name__}"}}}}
        op["responses"] = {str(spec.status): {"description": "OK",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}
        for status in spec.errors:
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
    return _channel_enums(document, list(channels.names()))


async def openapi_view(request: web.Request) -> web.Response:
    return json_response(build_openapi())
