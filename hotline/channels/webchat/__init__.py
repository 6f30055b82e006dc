"""The web chat: a page at /chat and a WebSocket at /ws/chat."""
