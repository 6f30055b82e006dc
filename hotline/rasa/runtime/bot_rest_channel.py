"""Rasa's REST channel, closed: every request needs Rasa's auth token (`?token=`).

`rasa run --auth-token` protects Rasa's HTTP API (/status, /model/parse, the trackers) but not the
input channels: a stock `/webhooks/rest/webhook` lets anyone who reaches the port talk as any
sender, i.e. continue any resident's conversation and trigger its actions. This channel keeps the
same URL and message format and adds the token check, plus an identity route that proves, without
sending the token, that this is the Rasa server the service started (see bot_identity).
"""
from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import bot_identity
from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

TOKEN = ""  # set by rasa_server.py before Rasa builds its channels


class TokenRestInput(RestInput):
    """The REST channel under its usual name ("rest"), refusing requests without the token."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = super().blueprint(on_new_message)

        @bp.route("/identity", methods=["GET"])
        async def identity(request: Request) -> HTTPResponse:
            nonce = request.args.get("nonce", "")
            if not 16 <= len(nonce) <= 128:
                return response.json({"error": "a nonce of 16 to 128 characters is required"}, status=400)
            agent = getattr(request.app.ctx, "agent", None)
            pid = os.getpid()
            return response.json({"pid": pid, "proof": bot_identity.proof(TOKEN, "rasa", nonce, pid),
                                  "ready": bool(agent is not None and agent.is_ready())})

        @bp.middleware("request")
        async def require_token(request: Request) -> HTTPResponse | None:
            if request.path.rstrip("/").endswith("/identity"):
                return None
            if not bot_identity.token_matches(TOKEN, request.args.get("token")):
                return response.json({"error": "a valid ?token= is required"}, status=401)
            return None

        return bp
