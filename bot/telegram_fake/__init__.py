"""A fake Telegram Bot API server and a client that acts as a person, for tests and the sandbox."""

from .client import ChatClient, ReplyKeyboard, render_message
from .messages import BotMessage, UserMessage
from .server import ApiCall, ApiError, FakeTelegram

__all__ = [
    "ApiCall",
    "ApiError",
    "BotMessage",
    "ChatClient",
    "FakeTelegram",
    "ReplyKeyboard",
    "UserMessage",
    "render_message",
]
