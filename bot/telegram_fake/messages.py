"""Messages as the fake stores them, and the snapshots handed to tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

CONTENT_KINDS = ("text", "photo", "document", "voice", "sticker", "contact")


@dataclass
class StoredMessage:
    """One message in a chat, kept up to date by edits and deletions."""

    chat_id: int
    message_id: int
    payload: dict[str, Any]
    from_bot: bool
    html: str | None = None
    deleted: bool = False
    edits: int = 0

    @property
    def kind(self) -> str:
        for kind in CONTENT_KINDS:
            if kind in self.payload:
                return kind
        return "service"

    @property
    def date(self) -> int:
        return int(self.payload["date"])

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        return self.payload.get("reply_markup")


def inline_rows(markup: dict[str, Any] | None) -> list[list[tuple[str, str | None]]]:
    if not markup or "inline_keyboard" not in markup:
        return []
    return [
        [(button.get("text", ""), button.get("callback_data")) for button in row]
        for row in markup["inline_keyboard"]
    ]


@dataclass
class BotMessage:
    """A snapshot of a message the bot sent, as the person sees it."""

    message_id: int
    text: str
    html: str | None
    inline_buttons: list[list[tuple[str, str | None]]] = field(default_factory=list)
    deleted: bool = False
    edited: bool = False
    edits: int = 0
    message_thread_id: int | None = None
    kind: str = "text"
    chat_id: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> list[str]:
        return [label for row in self.inline_buttons for label, _ in row]

    def callback_data(self, label: str) -> str | None:
        for row in self.inline_buttons:
            for text, data in row:
                if text == label:
                    return data
        raise KeyError(label)

    @classmethod
    def from_stored(cls, stored: StoredMessage) -> BotMessage:
        payload = stored.payload
        return cls(
            message_id=stored.message_id,
            text=payload.get("text", payload.get("caption", "")),
            html=stored.html,
            inline_buttons=inline_rows(stored.reply_markup),
            deleted=stored.deleted,
            edited=stored.edits > 0,
            edits=stored.edits,
            message_thread_id=payload.get("message_thread_id"),
            kind=stored.kind,
            chat_id=stored.chat_id,
            raw=copy.deepcopy(payload),
        )


@dataclass
class UserMessage:
    """A snapshot of a message a person (not the bot) sent."""

    message_id: int
    user_id: int
    text: str
    kind: str
    deleted: bool = False
    edited: bool = False
    message_thread_id: int | None = None
    chat_id: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_stored(cls, stored: StoredMessage) -> UserMessage:
        payload = stored.payload
        return cls(
            message_id=stored.message_id,
            user_id=payload.get("from", {}).get("id", 0),
            text=payload.get("text", payload.get("caption", "")),
            kind=stored.kind,
            deleted=stored.deleted,
            edited=stored.edits > 0,
            message_thread_id=payload.get("message_thread_id"),
            chat_id=stored.chat_id,
            raw=copy.deepcopy(payload),
        )


def snapshot(stored: StoredMessage) -> BotMessage | UserMessage:
    return BotMessage.from_stored(stored) if stored.from_bot else UserMessage.from_stored(stored)
