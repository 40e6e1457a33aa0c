"""An in-process HTTP server that answers like the Telegram Bot API.

The real aiogram ``Bot`` talks to it over HTTP, so tests exercise the same request
encoding, error classes and polling loop as production. Validations and error texts
follow the official Bot API server; see /work/shared/telegram.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from .html_parse import EntityParseError, ParsedText, parse_html, strip_text, utf16_len
from .messages import BotMessage, StoredMessage, UserMessage, snapshot

TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_TEXT = 200
CALLBACK_TTL = 150.0
DELETE_WINDOW = 48 * 3600.0
MAX_POLL_TIMEOUT = 50.0
ROW_LIMIT = 8
BUTTON_LIMIT = 100

CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

ALL_UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)
DEFAULT_UPDATE_TYPES = frozenset(ALL_UPDATE_TYPES) - {
    "chat_member", "message_reaction", "message_reaction_count",
}
CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
INLINE_BUTTON_ACTIONS = (
    "callback_data", "url", "login_url", "switch_inline_query",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "callback_game",
    "pay", "web_app", "copy_text",
)
JSON_FIELDS = frozenset({
    "reply_markup", "entities", "caption_entities", "commands", "scope", "menu_button",
    "allowed_updates", "reply_parameters", "link_preview_options", "media", "results",
    "options", "explanation_entities", "permissions", "message_ids", "reaction",
})
INT_FIELDS = frozenset({
    "chat_id", "from_chat_id", "message_id", "message_thread_id", "user_id", "offset", "limit",
    "timeout", "icon_color", "cache_time", "duration", "width", "height", "max_connections",
    "reply_to_message_id", "video_start_timestamp",
})
TEXT_FIELDS = frozenset({
    "text", "caption", "name", "title", "description", "short_description", "data", "url",
    "query", "emoji", "language_code", "callback_query_id", "file_id", "inline_message_id",
    "secret_token", "action", "parse_mode",
})
LOOPBACK_HTTP = re.compile(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/")
WEBHOOK_TIMEOUT = 60.0
WEBHOOK_MAX_RETRY_DELAY = 1.0
BOT_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """A Telegram error answer; ``code`` is both the HTTP status and ``error_code``."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


FAULT_KINDS = ("429", "500", "502", "timeout", "drop")

BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
    "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class Faults:
    """What goes wrong between a bot and the real Bot API, in a share of calls.

    A faulty call is never carried out: 429 with `retry_after`, 500, 502 (nginx's HTML page, as
    Telegram's front end sends it), a timeout (no answer for `timeout_seconds`) or a dropped
    connection. `duplicates` is the share of updates getUpdates delivers a second time.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after: int = 1
    timeout_seconds: float = 3.0
    duplicates: float = 0.0
    methods: frozenset[str] | None = None  # lower-case method names; None: every method
    seed: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    duplicated: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def pick(self, method_key: str) -> str | None:
        if self.rate <= 0 or (self.methods is not None and method_key not in self.methods):
            return None
        if self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind

    def duplicate(self) -> bool:
        if self.duplicates > 0 and self._random.random() < self.duplicates:
            self.duplicated += 1
            return True
        return False

    @property
    def total(self) -> int:
        return sum(self.injected.values())


LIMITED_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendvoice", "sendsticker", "sendaudio", "sendvideo",
    "sendanimation", "sendvideonote", "sendmediagroup", "sendlocation", "sendvenue", "sendcontact",
    "sendpoll", "senddice", "copymessage", "copymessages", "forwardmessage", "forwardmessages",
    "editmessagetext", "editmessagecaption", "editmessagemedia", "editmessagereplymarkup", "createforumtopic",
})


@dataclass
class Limits:
    """Telegram's flood control as this fake models it: a bucket per bot, per chat and per group.

    Each bucket lets `burst` messages through at once and then `rate` a second (GCRA); what comes
    faster is refused with 429 and the seconds until it would fit. Off unless `FakeTelegram.limits`
    is set. The bursts are Telegram's tolerance of short bursts; a sender keeping to the rates with
    smaller bursts of its own is never refused, one going faster for long is.
    """

    bot_rate: float = 30.0
    bot_burst: int = 10
    chat_rate: float = 1.0
    chat_burst: int = 5
    group_per_minute: float = 20.0
    group_burst: int = 5
    refused: int = 0
    refused_by: dict[str, int] = field(default_factory=dict)
    """Refusals by the bucket that was full: "bot", "chat" or "group"."""
    _tat: dict[str, float] = field(default_factory=dict)

    def admit(self, chat_id: int | None, now: float) -> int | None:
        """None when the message may go (and is counted), else the seconds to wait."""
        buckets = [("bot", self.bot_rate, self.bot_burst)]
        if chat_id is not None:
            buckets.append((f"chat:{chat_id}", self.chat_rate, self.chat_burst))
            if chat_id < 0:
                buckets.append((f"group:{chat_id}", self.group_per_minute / 60, self.group_burst))
        wait, full = 0.0, ""
        for key, rate, burst in buckets:
            tolerance = (burst - 1) / rate
            if self._tat.get(key, now) - tolerance - now > wait:
                wait, full = self._tat.get(key, now) - tolerance - now, key.split(":")[0]
        if wait > 0:
            self.refused += 1
            self.refused_by[full] = self.refused_by.get(full, 0) + 1
            return max(1, math.ceil(wait))
        for key, rate, _burst in buckets:
            self._tat[key] = max(self._tat.get(key, now), now) + 1 / rate
        return None


class ApiCall(NamedTuple):
    """One request the bot made: method name, decoded parameters, outcome."""

    method: str
    params: dict[str, Any]
    ok: bool
    result: Any


@dataclass
class CallEvent:
    """Bookkeeping behind :attr:`FakeTelegram.calls`, used to tell when a chat got answers."""

    method: str
    chat_id: int | None
    ok: bool
    description: str | None
    touched: list[int] = field(default_factory=list)


@dataclass
class Upload:
    filename: str
    content: bytes
    content_type: str | None


@dataclass
class FakeFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes | None
    kind: str

    def as_file(self) -> dict[str, Any]:
        result: dict[str, Any] = {"file_id": self.file_id, "file_unique_id": self.file_unique_id}
        if self.content is not None:
            result["file_size"] = len(self.content)
        result["file_path"] = self.file_path
        return result


@dataclass
class Topic:
    message_thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    deleted: bool = False

    def as_forum_topic(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "message_thread_id": self.message_thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            result["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return result


@dataclass
class ChatState:
    info: dict[str, Any]
    chat_instance: str
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1
    reply_keyboard: dict[str, Any] | None = None
    topics: dict[int, Topic] = field(default_factory=dict)
    menu_button: dict[str, Any] | None = None

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def is_forum(self) -> bool:
        return bool(self.info.get("is_forum"))

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass
class CallbackState:
    query_id: str
    chat_id: int
    message_id: int
    user_id: int
    data: str
    created_at: float
    answered: bool = False
    answer: dict[str, Any] | None = None


class Params:
    """Decoded request parameters with typed getters."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload]):
        self.values = values
        self.uploads = uploads

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def int(self, name: str) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad_request(f"wrong parameter {name} in request")
        try:
            return int(value)
        except ValueError:
            raise bad_request(f"wrong parameter {name} in request") from None

    def str(self, name: str) -> str | None:
        value = self.values.get(name)
        return None if value is None else str(value)

    def bool(self, name: str) -> bool:
        value = self.values.get(name)
        return value is True or value == "true" or value == 1


def _normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """Form fields arrive as strings; decode JSON-valued, integer and boolean fields."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in JSON_FIELDS:
                try:
                    value = json.loads(value)
                except ValueError:
                    if key == "reply_markup":
                        raise bad_request("can't parse reply keyboard markup JSON object") from None
                    if key in ("entities", "caption_entities"):
                        raise bad_request("can't parse entities JSON object") from None
                    raise bad_request(f"can't parse {key} JSON object") from None
            elif key in INT_FIELDS and re.fullmatch(r"-?\d+", value):
                value = int(value)
            elif key not in TEXT_FIELDS and value in ("true", "false"):
                value = value == "true"
        values[key] = value
    return values


def _method_name(attr: str) -> str:
    return attr[len("api_") :]


class FakeTelegram:
    """A fake Bot API server holding users, chats, messages and the update queue."""

    def __init__(self, bot_first_name: str = "Repay", bot_username: str = "repay_bot") -> None:
        self.bot_first_name = bot_first_name
        self.bot_username = bot_username
        self.bot_id = 0
        self.revoked_tokens: set[str] = set()
        self.flood_limit_per_chat: int | None = None
        self.limits: Limits | None = None
        """Telegram's limits on messages, enforced when set (off by default: see `Limits`)."""
        self.faults = Faults()
        self.strict_html_ampersand = False
        self.clock_offset = 0.0
        self.calls: list[ApiCall] = []
        self.events: list[CallEvent] = []
        self.base_url: str | None = None
        self.last_update_id = 0
        self.fetched_update_id = 0
        self.in_flight = 0
        self.polling = 0
        self.last_activity = 0.0

        self._users: dict[int, dict[str, Any]] = {}
        self._hides_forwards: set[int] = set()
        self._blocked: set[int] = set()
        self._chats: dict[int, ChatState] = {}
        self._updates: list[dict[str, Any]] = []
        self._again: list[dict[str, Any]] = []
        self._fetched: dict[int, dict[str, Any]] = {}
        self._delivered: set[int] = set()
        self._dropped: set[int] = set()
        self._update_ids = itertools.count(random.randint(100_000, 900_000))
        self._allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
        self._poll_generation = 0
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_max_connections = 40
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_sending: set[int] = set()
        self.webhook_last_error: tuple[float, str] | None = None
        self.webhook_deliveries = 0
        self.webhook_retry_delay = 0.05
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._default_menu_button: dict[str, Any] = {"type": "default"}
        self._callbacks: dict[str, CallbackState] = {}
        self._files: dict[str, FakeFile] = {}
        self._file_seq = itertools.count(1)
        self._failures: dict[str, deque[ApiError]] = {}
        self._sent_times: dict[int, deque[float]] = {}
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._touched: list[int] = []
        self._handlers: dict[str, Callable[[Params], Any]] = {
            _method_name(attr).lower(): getattr(self, attr)
            for attr in dir(self)
            if attr.startswith("api_")
        }
        self._method_names = {
            _method_name(attr).lower(): _method_name(attr) for attr in dir(self) if attr.startswith("api_")
        }

    # ------------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port) and return the base URL."""
        self._closing = False
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        self._notify()
        await self._stop_delivering()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ clock and knobs

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        self.clock_offset += seconds

    def block(self, user_id: int) -> None:
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        self._blocked.discard(user_id)

    def fail_next(
        self, method: str, error_code: int, description: str, retry_after: int | None = None
    ) -> None:
        """Make the next call of ``method`` fail with this error (queued, one per call)."""
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        self._failures.setdefault(method.lower(), deque()).append(
            ApiError(error_code, description, parameters)
        )

    # ------------------------------------------------------------------ people and chats

    def add_user(
        self,
        user_id: int,
        first_name: str = "Ann",
        language_code: str | None = "en",
        last_name: str | None = None,
        username: str | None = None,
        hides_forwards: bool = False,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        if hides_forwards:
            self._hides_forwards.add(user_id)
        info: dict[str, Any] = {"id": user_id, "first_name": first_name}
        if last_name:
            info["last_name"] = last_name
        if username:
            info["username"] = username
        info["type"] = "private"
        if user_id in self._chats:
            self._chats[user_id].info = info
        else:
            self._chats[user_id] = ChatState(info=info, chat_instance=self._chat_instance())
        return dict(user)

    def add_forum_group(self, chat_id: int, title: str = "Agents") -> dict[str, Any]:
        info = {"id": chat_id, "title": title, "type": "supergroup", "is_forum": True}
        self._chats[chat_id] = ChatState(info=info, chat_instance=self._chat_instance())
        return dict(info)

    def user(self, user_id: int) -> dict[str, Any]:
        if user_id not in self._users:
            raise KeyError(f"unknown user {user_id}; call add_user() first")
        return self._users[user_id]

    def chat(self, chat_id: int) -> ChatState:
        if chat_id not in self._chats:
            raise KeyError(f"unknown chat {chat_id}")
        return self._chats[chat_id]

    def chat_history(self, chat_id: int) -> list[BotMessage | UserMessage]:
        chat = self.chat(chat_id)
        return [snapshot(m) for m in sorted(chat.messages.values(), key=lambda m: m.message_id)]

    def bot_messages(self, chat_id: int) -> list[BotMessage]:
        return [m for m in self.chat_history(chat_id) if isinstance(m, BotMessage)]

    def stored_message(self, chat_id: int, message_id: int) -> StoredMessage:
        return self.chat(chat_id).messages[message_id]

    def reply_keyboard(self, chat_id: int) -> dict[str, Any] | None:
        return self.chat(chat_id).reply_keyboard

    def topics(self, chat_id: int) -> list[Topic]:
        return list(self.chat(chat_id).topics.values())

    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, Any]]:
        return list(self._commands.get((self._scope_key(scope), language_code), []))

    def unanswered_callbacks(self) -> list[str]:
        return [q.query_id for q in self._callbacks.values() if not q.answered]

    def callback_answer(self, query_id: str) -> dict[str, Any] | None:
        return self._callbacks[query_id].answer

    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._updates)

    def _chat_instance(self) -> str:
        return str(random.randint(-(10**18), 10**18))

    # ------------------------------------------------------------------ change notification

    def _notify(self) -> None:
        try:
            self.last_activity = asyncio.get_running_loop().time()
        except RuntimeError:
            self.last_activity = time.monotonic()
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def change_event(self) -> asyncio.Event:
        """An event set at the next change of state (call, request start, fetch, update)."""
        return self._changed

    # ------------------------------------------------------------------ what a person does

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, kind: payload})
        self.last_update_id = update_id
        self._notify()
        return update_id

    def _user_message(
        self,
        chat_id: int,
        user_id: int,
        content: dict[str, Any],
        message_thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        user = self.user(user_id)
        chat = self.chat(chat_id)
        if message_thread_id is not None:
            topic = chat.topics.get(message_thread_id)
            if topic is None or topic.deleted:
                raise ValueError(f"topic {message_thread_id} does not exist in chat {chat_id}")
            if topic.closed:
                raise ValueError(f"topic {message_thread_id} is closed")
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": dict(user),
            "chat": dict(chat.info),
            "date": int(self.now()),
        }
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = self._reply_copy(chat.messages[reply_to])
        message.update(content)
        chat.messages[message["message_id"]] = StoredMessage(
            chat_id=chat_id, message_id=message["message_id"], payload=message, from_bot=False
        )
        self._enqueue("message", message)
        return message

    @staticmethod
    def _reply_copy(stored: StoredMessage) -> dict[str, Any]:
        return {k: v for k, v in stored.payload.items() if k != "reply_to_message"}

    def _text_content(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            content["entities"] = [{"offset": 0, "length": utf16_len(command), "type": "bot_command"}]
        return content

    def _new_upload(self, kind: str, extension: str, content: bytes) -> FakeFile:
        seq = next(self._file_seq)
        fake_file = FakeFile(
            file_id=f"{kind[:2].upper()}{seq:04d}{random.getrandbits(64):016x}",
            file_unique_id=f"U{seq:04d}{random.getrandbits(32):08x}",
            file_path=f"{kind}s/file_{seq}.{extension}",
            content=content,
            kind=kind,
        )
        self._files[fake_file.file_id] = fake_file
        return fake_file

    def _photo_sizes(self, fake_file: FakeFile) -> list[dict[str, Any]]:
        size = len(fake_file.content or b"")
        return [{"file_id": fake_file.file_id, "file_unique_id": fake_file.file_unique_id,
                 "file_size": size, "width": 800, "height": 600}]

    def user_sends_text(self, user_id: int, text: str, reply_to: int | None = None) -> dict[str, Any]:
        return self._user_message(user_id, user_id, self._text_content(text), reply_to=reply_to)

    def user_shares_contact(
        self,
        user_id: int,
        phone_number: str,
        contact_user_id: int | None | EllipsisType = ...,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """Share a contact; by default the sender's own (``contact.user_id == from.id``)."""
        user = self.user(user_id)
        contact: dict[str, Any] = {
            "phone_number": phone_number,
            "first_name": first_name or user["first_name"],
        }
        if last_name:
            contact["last_name"] = last_name
        owner = user_id if contact_user_id is ... else contact_user_id
        if owner is not None:
            contact["user_id"] = owner
        return self._user_message(user_id, user_id, {"contact": contact})

    def user_sends_sticker(self, user_id: int, emoji: str = "👍") -> dict[str, Any]:
        sticker_file = self._new_upload("sticker", "webp", b"RIFF\x00\x00\x00\x00WEBP")
        sticker = {"file_id": sticker_file.file_id, "file_unique_id": sticker_file.file_unique_id,
                   "type": "regular", "width": 512, "height": 512, "is_animated": False,
                   "is_video": False, "emoji": emoji}
        return self._user_message(user_id, user_id, {"sticker": sticker})

    def _photo_content(self, caption: str | None, content: bytes | None) -> dict[str, Any]:
        photo = self._new_upload("photo", "jpg", content or b"\xff\xd8\xff\xe0fake-jpeg")
        result: dict[str, Any] = {"photo": self._photo_sizes(photo)}
        if caption:
            result["caption"] = caption
        return result

    def user_sends_photo(
        self, user_id: int, caption: str | None = None, content: bytes | None = None
    ) -> dict[str, Any]:
        return self._user_message(user_id, user_id, self._photo_content(caption, content))

    def user_sends_document(
        self,
        user_id: int,
        file_name: str = "statement.pdf",
        mime_type: str = "application/pdf",
        content: bytes = b"%PDF-1.4 fake",
        caption: str | None = None,
    ) -> dict[str, Any]:
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        doc = self._new_upload("document", extension, content)
        document = {"file_id": doc.file_id, "file_unique_id": doc.file_unique_id,
                    "file_name": file_name, "mime_type": mime_type, "file_size": len(content)}
        payload: dict[str, Any] = {"document": document}
        if caption:
            payload["caption"] = caption
        return self._user_message(user_id, user_id, payload)

    def user_sends_voice(self, user_id: int, duration: int = 3) -> dict[str, Any]:
        voice_file = self._new_upload("voice", "oga", b"OggS fake voice")
        voice = {"file_id": voice_file.file_id, "file_unique_id": voice_file.file_unique_id,
                 "duration": duration, "mime_type": "audio/ogg",
                 "file_size": len(voice_file.content or b"")}
        return self._user_message(user_id, user_id, {"voice": voice})

    def user_edits_message(self, user_id: int, message_id: int, new_text: str) -> dict[str, Any]:
        chat = self.chat(user_id)
        stored = chat.messages.get(message_id)
        if stored is None or stored.from_bot or stored.deleted:
            raise ValueError(f"user {user_id} has no message {message_id} to edit")
        stored.payload.pop("entities", None)
        stored.payload.update(self._text_content(new_text))
        stored.payload["edit_date"] = int(self.now())
        stored.edits += 1
        self._enqueue("edited_message", dict(stored.payload))
        return dict(stored.payload)

    def user_blocks_bot(self, user_id: int, blocked: bool = True) -> int:
        """Block (or unblock) the bot in the user's private chat, with the `my_chat_member` update
        Telegram sends then (delivered only to a bot that asks for it); returns its update id."""
        if blocked:
            self._blocked.add(user_id)
        else:
            self._blocked.discard(user_id)
        bot = self._bot_user()
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        member = {"user": bot}
        return self._enqueue("my_chat_member", {
            "chat": dict(self.chat(user_id).info),
            "from": dict(self.user(user_id)),
            "date": int(self.now()),
            "old_chat_member": {**member, "status": old, **({"until_date": 0} if old == "kicked" else {})},
            "new_chat_member": {**member, "status": new, **({"until_date": 0} if new == "kicked" else {})},
        })

    def user_presses(self, user_id: int, message_id: int, callback_data: str, forged: bool = False) -> str:
        return self.member_presses(user_id, user_id, message_id, callback_data, forged)

    def member_presses(
        self, chat_id: int, user_id: int, message_id: int, callback_data: str, forged: bool = False
    ) -> str:
        """Press an inline button; returns the callback query id.

        `forged=True` sends data that no button of the message carries, as a modified client or a
        replayed request would: the bot must treat callback data as untrusted input.
        """
        user = self.user(user_id)
        chat = self.chat(chat_id)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted or not stored.from_bot:
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        markup = stored.reply_markup or {}
        datas = [b.get("callback_data") for row in markup.get("inline_keyboard", []) for b in row]
        if callback_data not in datas and not forged:
            raise ValueError(f"message {message_id} has no button with callback_data {callback_data!r}")
        query_id = str(random.randint(10**15, 10**19))
        self._callbacks[query_id] = CallbackState(
            query_id=query_id, chat_id=chat_id, message_id=message_id, user_id=user_id,
            data=callback_data, created_at=self.now(),
        )
        self._enqueue("callback_query", {
            "id": query_id,
            "from": dict(user),
            "message": json.loads(json.dumps(stored.payload)),
            "chat_instance": chat.chat_instance,
            "data": callback_data,
        })
        return query_id

    def member_sends_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        message_thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        return self._user_message(
            chat_id, user_id, self._text_content(text), message_thread_id, reply_to
        )

    def member_sends_photo(
        self,
        chat_id: int,
        user_id: int,
        caption: str | None = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        return self._user_message(
            chat_id, user_id, self._photo_content(caption, None), message_thread_id
        )

    # ------------------------------------------------------------------ HTTP layer

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if not TOKEN_RE.match(token) or token in self.revoked_tokens:
            return web.json_response(ApiError(401, "Unauthorized").to_json(), status=401)
        path = request.match_info["path"]
        for fake_file in self._files.values():
            if fake_file.file_path == path and fake_file.content is not None:
                return web.Response(body=fake_file.content)
        return web.json_response(ApiError(404, "Not Found").to_json(), status=404)

    async def _read_raw(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
        raw: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    for key, value in body.items():
                        if isinstance(value, (dict, list)) or value is None:
                            raw[key] = value
                        elif isinstance(value, bool):
                            raw[key] = "true" if value else "false"
                        else:
                            raw[key] = str(value)
                    raw = {k: v for k, v in raw.items() if v is not None}
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        uploads[key] = Upload(value.filename, value.file.read(), value.content_type)
                    elif isinstance(value, (bytes, bytearray)):
                        uploads[key] = Upload(key, bytes(value), None)
                    else:
                        raw[key] = value
        return raw, uploads

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method_key = request.match_info["method"].lower()
        method = self._method_names.get(method_key, request.match_info["method"])
        counted = method_key != "getupdates"
        if counted:
            self.in_flight += 1
            self._notify()
        params: dict[str, Any] = {}
        chat_id: int | None = None
        try:
            match = TOKEN_RE.match(token)
            if not match:
                raise ApiError(404, "Not Found")
            if token in self.revoked_tokens:
                raise ApiError(401, "Unauthorized")
            self.bot_id = int(match.group(1))
            handler = self._handlers.get(method_key)
            if handler is None:
                raise ApiError(404, "Not Found")
            raw, uploads = await self._read_raw(request)
            params = dict(raw)  # what gets recorded if decoding fails
            params = _normalize(raw)
            chat_id = self._target_chat(method_key, params)
            injected = self._failures.get(method_key)
            if injected:
                raise injected.popleft()
            fault = self.faults.pick(method_key)
            if fault is not None:
                return await self._fault(request, fault, method, params, chat_id)
            if self.limits is not None and method_key in LIMITED_METHODS:
                retry_after = self.limits.admit(chat_id, self.now())
                if retry_after is not None:
                    raise ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            self._touched = []
            result = handler(Params(params, uploads))
            touched = list(self._touched)
            if inspect.isawaitable(result):
                result = await result
            self.calls.append(ApiCall(method, params, True, result))
            self.events.append(CallEvent(method, chat_id, True, None, touched))
            return web.json_response({"ok": True, "result": result}, dumps=_dumps)
        except ApiError as error:
            self.calls.append(ApiCall(method, params, False, error.to_json()))
            self.events.append(CallEvent(method, chat_id, False, error.description))
            return web.json_response(error.to_json(), status=error.code, dumps=_dumps)
        finally:
            if counted:
                self.in_flight -= 1
            self._notify()

    async def _fault(
        self, request: web.Request, kind: str, method: str, params: dict[str, Any], chat_id: int | None
    ) -> web.Response:
        self.calls.append(ApiCall(method, params, False, {"fault": kind}))
        self.events.append(CallEvent(method, chat_id, False, f"fault: {kind}"))
        if kind == "429":
            retry_after = self.faults.retry_after
            error = ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
            return web.json_response(error.to_json(), status=429, dumps=_dumps)
        if kind == "500":
            return web.json_response(ApiError(500, "Internal Server Error").to_json(), status=500, dumps=_dumps)
        if kind == "502":
            return web.Response(status=502, text=BAD_GATEWAY_PAGE, content_type="text/html")
        if kind == "timeout":
            await asyncio.sleep(self.faults.timeout_seconds)
            return web.Response(status=504, text="Gateway Time-out", content_type="text/html")
        assert kind == "drop"
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    def _target_chat(self, method_key: str, params: dict[str, Any]) -> int | None:
        """The chat a call acts on, so a waiting client can tell the bot answered it."""
        if method_key == "answercallbackquery":
            query = self._callbacks.get(str(params.get("callback_query_id")))
            return query.chat_id if query else None
        value = params.get("chat_id")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            found = self._find_chat(value)
            return found.id if found else None
        return None

    # ------------------------------------------------------------------ shared validation

    def _find_chat(self, value: int | str) -> ChatState | None:
        if isinstance(value, int):
            return self._chats.get(value)
        if value.lstrip("-").isdigit():
            return self._chats.get(int(value))
        if value.startswith("@"):
            for chat in self._chats.values():
                if chat.info.get("username", "").lower() == value[1:].lower():
                    return chat
        return None

    def _chat(self, p: Params, name: str = "chat_id") -> ChatState:
        value = p.get(name)
        if value is None or value == "":
            raise bad_request(f"{name} is empty")
        chat = self._find_chat(value)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def _check_blocked(self, chat: ChatState) -> None:
        if chat.info["type"] == "private" and chat.id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _check_thread(self, chat: ChatState, thread_id: int | None) -> int | None:
        if thread_id is None or thread_id == 0:
            return None
        topic = chat.topics.get(thread_id) if chat.is_forum else None
        if topic is None or topic.deleted:
            raise bad_request("message thread not found")
        if topic.closed:
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    def _check_flood(self, chat: ChatState) -> None:
        limit = self.flood_limit_per_chat
        if limit is None:
            return
        now = self.now()
        sent = self._sent_times.setdefault(chat.id, deque())
        while sent and now - sent[0] >= 1.0:
            sent.popleft()
        if len(sent) >= limit:
            retry_after = max(1, math.ceil(1.0 - (now - sent[0])))
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        sent.append(now)

    def _format(self, text: str | None, parse_mode: str | None, entities: Any, caption: bool) -> ParsedText:
        """Parse text or caption the way Telegram does, enforcing the length limits."""
        source = text or ""
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                parsed = parse_html(source, strict_ampersand=self.strict_html_ampersand)
            except EntityParseError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        elif mode in ("", "markdown", "markdownv2"):
            given = entities if isinstance(entities, list) else []
            parsed = ParsedText(source, [dict(e) for e in given])
        else:
            raise bad_request("unsupported parse_mode")
        parsed = strip_text(parsed)
        if caption:
            if len(parsed.text) > MAX_CAPTION:
                raise bad_request("message caption is too long")
        else:
            if not parsed.text:
                raise bad_request("message text is empty")
            if len(parsed.text) > MAX_TEXT:
                raise bad_request("message is too long")
        return parsed

    def _check_markup(self, markup: Any, inline_only: bool = False) -> dict[str, Any] | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
            if any(len(row) > ROW_LIMIT for row in rows) or sum(len(r) for r in rows) > BUTTON_LIMIT:
                raise bad_request("reply markup is too long")
            for row in rows:
                for button in row:
                    self._check_inline_button(button)
            return markup
        if inline_only:
            raise bad_request("inline keyboard expected")
        if "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request("can't parse reply keyboard markup JSON object")
            for row in rows:
                for button in row:
                    label = button if isinstance(button, str) else (button or {}).get("text")
                    if not label:
                        raise bad_request("can't parse keyboard button: Field \"text\" must be of type String")
            return markup
        if markup.get("remove_keyboard") or markup.get("force_reply"):
            return markup
        raise bad_request("can't parse reply keyboard markup JSON object")

    @staticmethod
    def _check_inline_button(button: Any) -> None:
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad_request("can't parse inline keyboard button: Field \"text\" must be of type String")
        actions = [a for a in INLINE_BUTTON_ACTIONS if a in button]
        if not actions:
            raise bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            )
        if "callback_data" in button:
            data = button["callback_data"]
            if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
        if "url" in button:
            url = str(button["url"])
            if not re.match(r"^(https?|tg)://\S+$", url):
                raise bad_request("BUTTON_URL_INVALID")

    def _remember_keyboard(self, chat: ChatState, markup: dict[str, Any] | None) -> None:
        if not markup:
            return
        if "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.bot_first_name,
                "username": self.bot_username}

    def _send(self, p: Params, content_builder: Callable[[], dict[str, Any]], html: str | None) -> dict[str, Any]:
        """Common path of every send method: chat, permissions, markup, flood, store."""
        chat = self._chat(p)
        self._check_blocked(chat)
        thread_id = self._check_thread(chat, p.int("message_thread_id"))
        markup = self._check_markup(p.get("reply_markup"))
        reply_to = self._reply_target(chat, p)
        content = content_builder()
        self._check_flood(chat)
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": self._bot_user(),
            "chat": dict(chat.info),
            "date": int(self.now()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = self._reply_copy(reply_to)
        message.update(content)
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._remember_keyboard(chat, markup)
        chat.messages[message["message_id"]] = StoredMessage(
            chat_id=chat.id, message_id=message["message_id"], payload=message, from_bot=True, html=html
        )
        self._touched.append(message["message_id"])
        return json.loads(json.dumps(message))

    def _reply_target(self, chat: ChatState, p: Params) -> StoredMessage | None:
        parameters = p.get("reply_parameters")
        message_id: int | None
        allow_missing = p.bool("allow_sending_without_reply")
        if isinstance(parameters, dict):
            message_id = parameters.get("message_id")
            allow_missing = allow_missing or bool(parameters.get("allow_sending_without_reply"))
        else:
            message_id = p.int("reply_to_message_id")
        if not message_id:
            return None
        stored = chat.messages.get(int(message_id))
        if stored is None or stored.deleted:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return stored

    def _caption_content(self, p: Params) -> dict[str, Any]:
        caption = p.str("caption")
        if not caption:
            return {}
        parsed = self._format(caption, p.str("parse_mode"), p.get("caption_entities"), caption=True)
        result: dict[str, Any] = {"caption": parsed.text}
        if parsed.entities:
            result["caption_entities"] = parsed.entities
        return result

    def _input_file(self, p: Params, name: str, kind: str, extension: str) -> FakeFile:
        value = p.get(name)
        upload: Upload | None = p.uploads.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = p.uploads.get(value[len("attach://") :])
            if upload is None:
                raise bad_request(f"there is no {kind} in the request")
        if upload is not None:
            suffix = upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else extension
            return self._new_upload(kind, suffix, upload.content)
        if not value:
            raise bad_request(f"there is no {kind} in the request")
        value = str(value)
        if value.startswith(("http://", "https://")):
            fake_file = self._new_upload(kind, extension, b"")
            fake_file.content = None
            return fake_file
        if value in self._files:
            return self._files[value]
        raise bad_request("wrong file identifier/HTTP URL specified")

    # ------------------------------------------------------------------ Bot API methods

    def api_getMe(self, p: Params) -> dict[str, Any]:
        return {
            "id": self.bot_id, "is_bot": True, "first_name": self.bot_first_name,
            "username": self.bot_username, "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": False, "has_main_web_app": False,
        }

    def api_logOut(self, p: Params) -> bool:
        return True

    def api_close(self, p: Params) -> bool:
        return True

    def api_setWebhook(self, p: Params) -> bool:
        url = p.str("url") or ""
        secret = p.str("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("secret token contains unallowed characters")
        if url and not (url.startswith("https://") or LOOPBACK_HTTP.match(url)):
            # Like a local Bot API server, plain http is accepted for this machine's addresses.
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        max_connections = p.int("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = p.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATE_TYPES
        self._webhook_url = url
        self._webhook_secret = secret
        self._webhook_max_connections = max_connections
        if p.bool("drop_pending_updates"):
            self._updates.clear()
        self._poll_generation += 1
        if url and self._webhook_task is None:
            self._webhook_task = asyncio.create_task(self._deliver_updates())
        self._notify()
        return True

    def api_deleteWebhook(self, p: Params) -> bool:
        self._webhook_url = ""
        if p.bool("drop_pending_updates"):
            self._updates.clear()
        self._notify()
        return True

    def api_getWebhookInfo(self, p: Params) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self._webhook_url, "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_max_connections
            if self._allowed_updates != DEFAULT_UPDATE_TYPES:
                info["allowed_updates"] = sorted(self._allowed_updates)
            if self.webhook_last_error is not None:
                info["last_error_date"] = int(self.webhook_last_error[0])
                info["last_error_message"] = self.webhook_last_error[1]
        return info

    # ------------------------------------------------------------------ webhook delivery

    async def _deliver_updates(self) -> None:
        """While a webhook is set: POST pending updates to it, up to `max_connections` at once, in order."""
        sending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)) as session:
            try:
                while self._webhook_url and not self._closing:
                    event = self._changed
                    self._drop_unwanted()
                    for update in list(self._updates):
                        if len(self._webhook_sending) >= self._webhook_max_connections:
                            break
                        if update["update_id"] in self._webhook_sending:
                            continue
                        self._webhook_sending.add(update["update_id"])
                        task = asyncio.create_task(self._deliver(session, update))
                        sending.add(task)
                        task.add_done_callback(sending.discard)
                    await event.wait()
            finally:
                for task in list(sending):
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)
                self._webhook_sending.clear()
                self._webhook_task = None

    async def _deliver(self, session: aiohttp.ClientSession, update: dict[str, Any]) -> None:
        """One update, posted until the bot answers 2xx; a failure waits a little (growing) and posts again."""
        delay = self.webhook_retry_delay
        headers = {"X-Telegram-Bot-Api-Secret-Token": self._webhook_secret} if self._webhook_secret else {}
        try:
            while self._webhook_url and not self._closing:
                self.webhook_deliveries += 1
                try:
                    async with session.post(self._webhook_url, json=update, headers=headers) as response:
                        await response.read()
                        if 200 <= response.status < 300:
                            break
                        error = f"Wrong response from the webhook: {response.status} {response.reason}"
                except (aiohttp.ClientError, TimeoutError) as failure:
                    error = f"Connection failed: {type(failure).__name__}"
                self.webhook_last_error = (self.now(), error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, WEBHOOK_MAX_RETRY_DELAY)
            else:
                return
            if update in self._updates:
                self._updates.remove(update)
            update_id = update["update_id"]
            self.fetched_update_id = max(self.fetched_update_id, update_id)
            self._fetched[update_id] = update
            if self.faults.duplicate():
                self._updates.append(update)
            self._delivered.add(update_id)
        finally:
            self._webhook_sending.discard(update["update_id"])
            self._notify()

    async def _stop_delivering(self) -> None:
        task = self._webhook_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def api_getUpdates(self, p: Params) -> list[dict[str, Any]]:
        if self._webhook_url:
            raise ApiError(409, CONFLICT_WEBHOOK)
        offset = p.int("offset") or 0
        limit = p.int("limit") or 100
        if not 1 <= limit <= 100:
            limit = 100
        timeout = min(max(float(p.int("timeout") or 0), 0.0), MAX_POLL_TIMEOUT)
        allowed = p.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATE_TYPES
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.polling += 1
        try:
            while True:
                if generation != self._poll_generation:
                    raise ApiError(409, CONFLICT_POLL)
                self._drop_unwanted()
                again, self._again = self._again, []
                ready = again + self._updates[: max(limit - len(again), 0)]
                remaining = deadline - loop.time()
                if ready or remaining <= 0 or self._closing:
                    if ready:
                        self.fetched_update_id = max(self.fetched_update_id, ready[-1]["update_id"])
                        self._delivered.update(u["update_id"] for u in ready)
                        self._fetched.update((u["update_id"], u) for u in ready)
                        self._again = [u for u in ready if u not in again and self.faults.duplicate()]
                    return json.loads(json.dumps(ready))
                event = self._changed
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            self.polling -= 1

    def _drop_unwanted(self) -> None:
        """Telegram never delivers update types outside ``allowed_updates``."""
        kept = []
        for update in self._updates:
            if self._update_type(update) in self._allowed_updates:
                kept.append(update)
            else:
                self._dropped.add(update["update_id"])
        self._updates = kept

    @property
    def poll_generation(self) -> int:
        """Grows with every getUpdates call: a newer poll than one seen before has begun."""
        return self._poll_generation

    def redeliver(self, update_id: int) -> None:
        """Deliver a fetched update once more, as Telegram does when a bot died before confirming it."""
        self._again.append(self._fetched[update_id])
        self._notify()

    def was_fetched(self, update_id: int) -> bool:
        """True once getUpdates returned the update (or dropped it per ``allowed_updates``)."""
        return update_id in self._delivered or update_id in self._dropped

    def was_dropped(self, update_id: int) -> bool:
        return update_id in self._dropped

    def all_fetched(self) -> bool:
        return all(self.was_fetched(u["update_id"]) for u in self._updates)

    @staticmethod
    def _update_type(update: dict[str, Any]) -> str:
        return next(k for k in update if k != "update_id")

    @staticmethod
    def _scope_key(scope: Any) -> str:
        if not isinstance(scope, dict) or not scope:
            scope = {"type": "default"}
        return json.dumps(scope, sort_keys=True)

    def api_setMyCommands(self, p: Params) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand")
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not BOT_COMMAND_RE.match(name):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("command description must be non-empty")
            cleaned.append({"command": name, "description": description})
        key = (self._scope_key(p.get("scope")), p.str("language_code") or "")
        self._commands[key] = cleaned
        return True

    def api_getMyCommands(self, p: Params) -> list[dict[str, Any]]:
        return self.commands(p.get("scope"), p.str("language_code") or "")

    def api_deleteMyCommands(self, p: Params) -> bool:
        self._commands.pop((self._scope_key(p.get("scope")), p.str("language_code") or ""), None)
        return True

    def api_setChatMenuButton(self, p: Params) -> bool:
        button = p.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in ("default", "commands", "web_app"):
            raise bad_request("can't parse menu button")
        if p.get("chat_id") is not None:
            self._chat(p).menu_button = button
        else:
            self._default_menu_button = button
        return True

    def api_getChatMenuButton(self, p: Params) -> dict[str, Any]:
        if p.get("chat_id") is not None:
            chat = self._chat(p)
            return chat.menu_button or self._default_menu_button
        return self._default_menu_button

    def api_sendMessage(self, p: Params) -> dict[str, Any]:
        text = p.str("text")

        def content() -> dict[str, Any]:
            parsed = self._format(text, p.str("parse_mode"), p.get("entities"), caption=False)
            result: dict[str, Any] = {"text": parsed.text}
            if parsed.entities:
                result["entities"] = parsed.entities
            return result

        return self._send(p, content, text)

    def _editable(self, p: Params, missing: str) -> tuple[ChatState, StoredMessage]:
        if p.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chat(p)
        message_id = p.int("message_id")
        stored = chat.messages.get(message_id or 0)
        if stored is None or stored.deleted:
            raise bad_request(missing)
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat, stored

    def _apply_edit(self, stored: StoredMessage, changes: dict[str, Any], markup: dict[str, Any] | None) -> dict[str, Any]:
        payload = stored.payload
        unchanged = all(payload.get(k) == (v or None) for k, v in changes.items())
        if unchanged and payload.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        for key, value in changes.items():
            if value:
                payload[key] = value
            else:
                payload.pop(key, None)
        if markup:
            payload["reply_markup"] = markup
        else:
            payload.pop("reply_markup", None)
        payload["edit_date"] = int(self.now())
        stored.edits += 1
        self._touched.append(stored.message_id)
        return json.loads(json.dumps(payload))

    def api_editMessageText(self, p: Params) -> dict[str, Any]:
        _, stored = self._editable(p, "message to edit not found")
        if "text" not in stored.payload:
            raise bad_request("there is no text in the message to edit")
        text = p.str("text")
        parsed = self._format(text, p.str("parse_mode"), p.get("entities"), caption=False)
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        result = self._apply_edit(stored, {"text": parsed.text, "entities": parsed.entities}, markup)
        stored.html = text
        return result

    def api_editMessageCaption(self, p: Params) -> dict[str, Any]:
        _, stored = self._editable(p, "message to edit not found")
        if "text" in stored.payload:
            raise bad_request("there is no caption in the message to edit")
        caption = p.str("caption")
        parsed = self._format(caption, p.str("parse_mode"), p.get("caption_entities"), caption=True)
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        result = self._apply_edit(
            stored, {"caption": parsed.text, "caption_entities": parsed.entities}, markup
        )
        stored.html = caption
        return result

    def api_editMessageReplyMarkup(self, p: Params) -> dict[str, Any]:
        _, stored = self._editable(p, "message to edit not found")
        markup = self._check_markup(p.get("reply_markup"), inline_only=True)
        return self._apply_edit(stored, {}, markup)

    def api_deleteMessage(self, p: Params) -> bool:
        chat = self._chat(p)
        stored = chat.messages.get(p.int("message_id") or 0)
        if stored is None or stored.deleted:
            raise bad_request("message to delete not found")
        if self.now() - stored.date > DELETE_WINDOW:
            raise bad_request("message can't be deleted")
        stored.deleted = True
        return True

    def api_answerCallbackQuery(self, p: Params) -> bool:
        query = self._callbacks.get(p.str("callback_query_id") or "")
        if query is None or query.answered or self.now() - query.created_at > CALLBACK_TTL:
            raise bad_request(QUERY_TOO_OLD)
        text = p.str("text") or ""
        if len(text) > MAX_CALLBACK_TEXT:
            raise bad_request("MESSAGE_TOO_LONG")
        query.answered = True
        query.answer = {"text": text, "show_alert": p.bool("show_alert"), "url": p.str("url")}
        return True

    def api_sendChatAction(self, p: Params) -> bool:
        chat = self._chat(p)
        self._check_blocked(chat)
        if p.str("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._check_thread(chat, p.int("message_thread_id"))
        return True

    def _source(self, p: Params, missing: str) -> StoredMessage:
        source_chat = self._chat(p, "from_chat_id")
        stored = source_chat.messages.get(p.int("message_id") or 0)
        if stored is None or stored.deleted:
            raise bad_request(missing)
        if stored.kind == "service":
            raise bad_request("message can't be copied")
        return stored

    def api_copyMessage(self, p: Params) -> dict[str, Any]:
        source = self._source(p, "message to copy not found")

        def content() -> dict[str, Any]:
            copied = {k: v for k, v in source.payload.items()
                      if k in ("text", "entities", "photo", "document", "voice", "sticker",
                               "contact", "caption", "caption_entities")}
            if p.get("caption") is not None and "text" not in copied:
                copied.pop("caption", None)
                copied.pop("caption_entities", None)
                copied.update(self._caption_content(p))
            return json.loads(json.dumps(copied))

        message = self._send(p, content, source.html)
        return {"message_id": message["message_id"]}

    def api_forwardMessage(self, p: Params) -> dict[str, Any]:
        source = self._source(p, "message to forward not found")
        sender = source.payload.get("from", {})

        def content() -> dict[str, Any]:
            copied = {k: v for k, v in source.payload.items()
                      if k in ("text", "entities", "photo", "document", "voice", "sticker",
                               "contact", "caption", "caption_entities")}
            if sender.get("id") in self._hides_forwards:
                name = " ".join(filter(None, [sender.get("first_name"), sender.get("last_name")]))
                origin = {"type": "hidden_user", "sender_user_name": name, "date": source.date}
            else:
                origin = {"type": "user", "sender_user": sender, "date": source.date}
            copied["forward_origin"] = origin
            return json.loads(json.dumps(copied))

        return self._send(p, content, source.html)

    def _media(self, p: Params, field_name: str, extension: str, build: Callable[[FakeFile], dict[str, Any]]) -> dict[str, Any]:
        def content() -> dict[str, Any]:
            captions = self._caption_content(p) if field_name != "sticker" else {}
            fake_file = self._input_file(p, field_name, field_name, extension)
            return {**build(fake_file), **captions}

        return self._send(p, content, p.str("caption"))

    def api_sendPhoto(self, p: Params) -> dict[str, Any]:
        return self._media(p, "photo", "jpg", lambda f: {"photo": self._photo_sizes(f)})

    def api_sendDocument(self, p: Params) -> dict[str, Any]:
        def build(f: FakeFile) -> dict[str, Any]:
            name = f.file_path.rsplit("/", 1)[-1]
            upload = p.get("document")
            if isinstance(upload, str) and upload.startswith("attach://"):
                found = p.uploads.get(upload[len("attach://") :])
                name = found.filename if found else name
            document: dict[str, Any] = {"file_id": f.file_id, "file_unique_id": f.file_unique_id,
                                        "file_name": name}
            if f.content is not None:
                document["file_size"] = len(f.content)
            return {"document": document}

        return self._media(p, "document", "bin", build)

    def api_sendVoice(self, p: Params) -> dict[str, Any]:
        return self._media(p, "voice", "oga", lambda f: {"voice": {
            "file_id": f.file_id, "file_unique_id": f.file_unique_id,
            "duration": p.int("duration") or 1, "mime_type": "audio/ogg"}})

    def api_sendSticker(self, p: Params) -> dict[str, Any]:
        return self._media(p, "sticker", "webp", lambda f: {"sticker": {
            "file_id": f.file_id, "file_unique_id": f.file_unique_id, "type": "regular",
            "width": 512, "height": 512, "is_animated": False, "is_video": False,
            "emoji": p.str("emoji") or "👍"}})

    def api_getFile(self, p: Params) -> dict[str, Any]:
        fake_file = self._files.get(p.str("file_id") or "")
        if fake_file is None:
            raise bad_request("invalid file_id")
        return fake_file.as_file()

    def api_getChat(self, p: Params) -> dict[str, Any]:
        chat = self._chat(p)
        info = dict(chat.info)
        info.update({
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {"unlimited_gifts": True, "limited_gifts": True,
                                    "unique_gifts": True, "premium_subscription": True,
                                    "gifts_from_channels": True},
        })
        return info

    def _forum(self, p: Params) -> ChatState:
        chat = self._chat(p)
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        return chat

    def _topic(self, chat: ChatState, p: Params) -> Topic:
        topic = chat.topics.get(p.int("message_thread_id") or 0)
        if topic is None or topic.deleted:
            raise bad_request("TOPIC_ID_INVALID")
        return topic

    @staticmethod
    def _check_topic_name(name: str | None) -> str:
        if not name:
            raise bad_request("TOPIC_TITLE_EMPTY")
        if len(name) > 128:
            raise bad_request("TOPIC_TITLE_TOO_LONG")
        return name

    def _service(self, chat: ChatState, thread_id: int, content: dict[str, Any]) -> int:
        message_id = chat.take_message_id()
        payload = {"message_id": message_id, "from": self._bot_user(), "chat": dict(chat.info),
                   "date": int(self.now()), "message_thread_id": thread_id or message_id,
                   "is_topic_message": True, **content}
        chat.messages[message_id] = StoredMessage(chat.id, message_id, payload, from_bot=True)
        return message_id

    def api_createForumTopic(self, p: Params) -> dict[str, Any]:
        chat = self._forum(p)
        name = self._check_topic_name(p.str("name"))
        icon_color = p.int("icon_color") or 7322096
        emoji_id = p.str("icon_custom_emoji_id")
        created = {"name": name, "icon_color": icon_color}
        if emoji_id:
            created["icon_custom_emoji_id"] = emoji_id
        thread_id = self._service(chat, 0, {"forum_topic_created": created})
        chat.topics[thread_id] = Topic(thread_id, name, icon_color, emoji_id)
        return chat.topics[thread_id].as_forum_topic()

    def api_editForumTopic(self, p: Params) -> bool:
        chat = self._forum(p)
        topic = self._topic(chat, p)
        name = p.str("name")
        emoji_id = p.str("icon_custom_emoji_id")
        if name is not None:
            self._check_topic_name(name)
        if (name is None or name == topic.name) and (emoji_id is None or emoji_id == topic.icon_custom_emoji_id):
            raise bad_request("TOPIC_NOT_MODIFIED")
        edited: dict[str, Any] = {}
        if name is not None:
            topic.name = name
            edited["name"] = name
        if emoji_id is not None:
            topic.icon_custom_emoji_id = emoji_id
            edited["icon_custom_emoji_id"] = emoji_id
        self._service(chat, topic.message_thread_id, {"forum_topic_edited": edited})
        return True

    def api_closeForumTopic(self, p: Params) -> bool:
        chat = self._forum(p)
        topic = self._topic(chat, p)
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        self._service(chat, topic.message_thread_id, {"forum_topic_closed": {}})
        return True

    def api_reopenForumTopic(self, p: Params) -> bool:
        chat = self._forum(p)
        topic = self._topic(chat, p)
        if not topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        self._service(chat, topic.message_thread_id, {"forum_topic_reopened": {}})
        return True

    def api_deleteForumTopic(self, p: Params) -> bool:
        chat = self._forum(p)
        topic = self._topic(chat, p)
        topic.deleted = True
        for stored in chat.messages.values():
            if stored.payload.get("message_thread_id") == topic.message_thread_id:
                stored.deleted = True
        return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


__all__ = ["ApiCall", "ApiError", "CallEvent", "FakeTelegram", "Topic"]
