"""`rasa run` as the hotline starts it: API token from the environment, closed REST channel.

Usage (from bot/, with .venv-rasa's python): rasa_server.py <rasa run arguments>, with
HOTLINE_BOT_RASA_TOKEN (Rasa's API token) and HOTLINE_API_SERVICE_TOKEN (sent to the action
server, see the generated endpoints file) in the environment. The token is put on Rasa's command
line only inside this process: /proc/<pid>/cmdline, readable by every local user, never shows it.
Run it this way too when Rasa runs elsewhere ([bot] rasa_url), with the credentials file
`bot_rest_channel.TokenRestInput:`, so the service can check its identity.
"""
from __future__ import annotations

import os
import sys

import bot_identity


def _build_models_eagerly() -> None:
    """Halve Rasa's start: build DIET's and TED's weights without tracing a training graph.

    RasaModel.load fits the empty model on one example only to create weights of the right shapes,
    then overwrites them with the trained ones. With tf.function that fit traces the whole training
    step (about 35 of the 50 s a start takes on two cores); run eagerly, it takes a second. The
    prediction graph is still traced at load, so the first resident does not wait for it.
    """
    from rasa.utils.tensorflow.models import RasaModel

    original_load = RasaModel.load.__func__  # type: ignore[attr-defined]
    original_fit = RasaModel.fit
    loading = False

    def fit(self, *args, **kwargs):
        if not loading:
            return original_fit(self, *args, **kwargs)
        previous = self._run_eagerly
        self.run_eagerly = True
        try:
            return original_fit(self, *args, **kwargs)
        finally:
            self.run_eagerly = previous

    def load(cls, *args, **kwargs):
        nonlocal loading
        loading = True
        try:
            return original_load(cls, *args, **kwargs)
        finally:
            loading = False

    RasaModel.fit = fit  # type: ignore[method-assign]
    RasaModel.load = classmethod(load)  # type: ignore[method-assign, assignment]


def rasa_argv(token: str, args: list[str]) -> list[str]:
    """`rasa run`'s command line. The token is joined to its option: secrets.token_urlsafe begins with
    "-" once in 64 starts, and as a word of its own argparse takes it for an option and Rasa exits."""
    return ["rasa", "run", "--enable-api", f"--auth-token={token}", *args]


def main() -> None:
    bot_identity.die_with_parent()
    token = os.environ.pop(bot_identity.RASA_TOKEN_ENV, "")
    if not token:
        sys.exit(f"{bot_identity.RASA_TOKEN_ENV} is not set: Rasa's HTTP API is not run without a token")
    import bot_rest_channel
    bot_rest_channel.TOKEN = token
    if os.environ.get("HOTLINE_BOT_TRACE_BUILD") != "1":
        _build_models_eagerly()
    sys.argv = rasa_argv(token, sys.argv[1:])
    from rasa.__main__ import main as rasa_main
    rasa_main()


if __name__ == "__main__":
    main()
