"""The bot's action server (rasa_sdk) as the hotline runs it: on 127.0.0.1, closed by a token.

Every request needs `Authorization: Bearer <HOTLINE_API_SERVICE_TOKEN>`, which Rasa sends from the
endpoints file's `action_endpoint.headers`; it is checked before any action runs. `rasa run actions`
binds 0.0.0.0 (rasa_sdk.endpoint.run reads SANIC_HOST) and checks nothing, so this builds the same
app with rasa_sdk.endpoint.create_app and adds the check and an identity route (see bot_identity).

Usage (from bot/, with .venv-rasa's python): actions_server.py --port 5055 [--host 127.0.0.1]
"""
from __future__ import annotations

import argparse
import os
import sys

import bot_identity


def main() -> None:
    bot_identity.die_with_parent()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--actions", default="actions", help="the package with the custom actions")
    args = parser.parse_args()
    token = os.environ.get(bot_identity.SERVICE_TOKEN_ENV, "")
    if not token:
        sys.exit(f"{bot_identity.SERVICE_TOKEN_ENV} is not set: the action server is not run without a token")
    sys.path.insert(1, os.getcwd())  # the actions package lives in bot/, as for `rasa run actions`

    from rasa_sdk import utils
    from rasa_sdk.endpoint import create_app
    from rasa_sdk.plugin import plugin_manager
    from sanic import response
    from sanic.request import Request
    from sanic.response import HTTPResponse

    utils.configure_colored_logging("INFO")
    utils.update_sanic_log_level()
    app = create_app(args.actions, cors_origins=None)  # no browser has business here

    @app.middleware("request")
    async def require_token(request: Request) -> HTTPResponse | None:
        if request.path == bot_identity.ACTIONS_IDENTITY_PATH:
            return None
        if not bot_identity.token_matches(token, bot_identity.bearer(request.headers.get("Authorization"))):
            return response.json({"error": "the service token is required"}, status=401)
        return None

    @app.get(bot_identity.ACTIONS_IDENTITY_PATH)
    async def identity(request: Request) -> HTTPResponse:
        nonce = request.args.get("nonce", "")
        if not 16 <= len(nonce) <= 128:
            return response.json({"error": "a nonce of 16 to 128 characters is required"}, status=400)
        pid = os.getpid()
        return response.json({"pid": pid, "proof": bot_identity.proof(token, "actions", nonce, pid)})

    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    app.run(args.host, args.port, workers=1)


if __name__ == "__main__":
    main()
