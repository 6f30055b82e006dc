"""Entry points that run inside the bot's own environment (.venv-rasa), not in the service.

The service starts them as scripts (`.venv-rasa/bin/python hotline/rasa/runtime/<name>.py`), so
their imports are top-level from this folder; only `bot_identity` is shared with the service.
"""
