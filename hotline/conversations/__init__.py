"""Conversations (会话): one state machine for every channel, bot ▸ waiting ▸ agent ▸ closed."""
