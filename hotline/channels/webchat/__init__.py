"""The web chat: a page at /chat and a WebSocket at /ws/chat."""
from hotline.channels.registry import register
from hotline.channels.webchat.channel import WebChatPlugin

register(WebChatPlugin())
