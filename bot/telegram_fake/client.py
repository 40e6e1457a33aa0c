"""A person in a chat: acts through :class:`FakeTelegram` and reads what the bot answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

from .messages import BotMessage, StoredMessage
from .server import FakeTelegram

DEFAULT_SETTLE = 0.15
DEFAULT_TIMEOUT = 10.0


@dataclass
class ReplyKeyboard:
    """The reply keyboard currently shown under the input field."""

    rows: list[list[str]]
    contact_label: str | None = None
    one_time: bool = False
    resize: bool = False
    persistent: bool = False

    @property
    def labels(self) -> list[str]:
        return [label for row in self.rows for label in row]

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    @classmethod
    def from_markup(cls, markup: dict[str, Any]) -> ReplyKeyboard:
        rows: list[list[str]] = []
        contact_label = None
        for row in markup.get("keyboard", []):
            labels = []
            for button in row:
                if isinstance(button, str):
                    labels.append(button)
                    continue
                labels.append(button["text"])
                if button.get("request_contact") and contact_label is None:
                    contact_label = button["text"]
            rows.append(labels)
        return cls(
            rows=rows,
            contact_label=contact_label,
            one_time=bool(markup.get("one_time_keyboard")),
            resize=bool(markup.get("resize_keyboard")),
            persistent=bool(markup.get("is_persistent")),
        )


def inline_cells(msg: BotMessage) -> list[list[tuple[str, str | None]]]:
    """The message's inline buttons, row by row: each label with the URL it opens (None for a callback)."""
    rows = (msg.raw.get("reply_markup") or {}).get("inline_keyboard")
    if not rows:
        return [[(label, None) for label, _ in row] for row in msg.inline_buttons]
    return [[(button.get("text", ""), button.get("url")) for button in row] for row in rows]


def render_message(
    msg: BotMessage,
    reply_keyboard: ReplyKeyboard | None = None,
    start: int | None = 1,
    where: str = "",
) -> str:
    """Text for a terminal: the message, its inline buttons numbered from ``start`` (bulleted when
    None), a URL button's address after it, then the reply-keyboard buttons; ``where`` names the chat."""
    flags = "".join(
        [" (edited)" if msg.edited else "", " (deleted)" if msg.deleted else ""]
    )
    kind = " " + msg.kind if msg.kind != "text" else ""
    header = f"[bot #{msg.message_id}{kind}{', ' + where if where else ''}]{flags}"
    lines = [header, msg.text]
    number = start
    for row in inline_cells(msg):
        cells = []
        for label, url in row:
            mark = "·" if number is None else f"[{number}]"
            cells.append(f"{mark} {label}" + (f" → {url}" if url else ""))
            if number is not None:
                number += 1
        lines.append("  " + "  ".join(cells))
    if reply_keyboard is not None:
        lines.append(render_keyboard(reply_keyboard, number or 1))
    return "\n".join(lines)


def render_keyboard(keyboard: ReplyKeyboard, start: int = 1) -> str:
    """The reply keyboard for a terminal, its buttons numbered from ``start``."""
    lines = ["keyboard:"]
    number = start
    for row in keyboard.rows:
        cells = []
        for label in row:
            suffix = " (shares phone)" if label == keyboard.contact_label else ""
            cells.append(f"[{number}] {label}{suffix}")
            number += 1
        lines.append("  " + "  ".join(cells))
    return "\n".join(lines)


def _match(labels: list[str], wanted: str) -> str | None:
    if wanted in labels:
        return wanted
    found = {label for label in labels if wanted.lower() in label.lower()}
    if len(found) > 1:
        raise AssertionError(f"button {wanted!r} is ambiguous: {sorted(found)}")
    return found.pop() if found else None


PROBE_INTERVAL = 0.01
"""How often a `handled` probe is asked while the bot works on an update."""

SILENT_METHODS = frozenset({"deleteMessage", "sendChatAction"})
"""Calls that do not answer the person: a reply is still on its way after them."""


class ChatClient:
    """Acts as one person in a chat (private by default, or a member in a group topic).

    Every action waits until the bot has fetched and handled the update, then returns the bot
    messages sent or edited meanwhile. "Handled" is exact when the bot runs in the same process
    and a `handled(update_id)` probe is given; otherwise it is the bot having acted on this chat
    and then gone quiet for ``settle`` seconds.
    """

    def __init__(
        self,
        fake: FakeTelegram,
        user_id: int,
        chat_id: int | None = None,
        message_thread_id: int | None = None,
        settle: float = DEFAULT_SETTLE,
        timeout: float = DEFAULT_TIMEOUT,
        phone: str | None = None,
        handled: Callable[[int], bool] | None = None,
    ) -> None:
        self.fake = fake
        self.handled = handled
        self.user_id = user_id
        self.chat_id = user_id if chat_id is None else chat_id
        self.message_thread_id = message_thread_id
        self.settle = settle
        self.timeout = timeout
        self.phone = phone
        self.callback_ids: list[str] = []
        self._numbered: list[tuple[str, int | None, str]] | None = None

    @property
    def is_private(self) -> bool:
        return self.chat_id == self.user_id

    # ------------------------------------------------------------------ reading

    def _stored(self) -> list[StoredMessage]:
        messages = sorted(self.fake.chat(self.chat_id).messages.values(), key=lambda m: m.message_id)
        if self.message_thread_id is not None:
            messages = [
                m for m in messages if m.payload.get("message_thread_id") == self.message_thread_id
            ]
        return messages

    @property
    def messages(self) -> list[BotMessage]:
        return [BotMessage.from_stored(m) for m in self._stored() if m.from_bot and m.kind != "service"]

    @property
    def last(self) -> BotMessage | None:
        visible = [m for m in self.messages if not m.deleted]
        return visible[-1] if visible else None

    @property
    def deleted_user_messages(self) -> list[int]:
        return [
            m.message_id
            for m in self._stored()
            if not m.from_bot and m.deleted and m.payload.get("from", {}).get("id") == self.user_id
        ]

    @property
    def reply_keyboard(self) -> ReplyKeyboard | None:
        markup = self.fake.reply_keyboard(self.chat_id)
        return ReplyKeyboard.from_markup(markup) if markup else None

    @property
    def last_callback_answer(self) -> dict[str, Any] | None:
        """What the bot answered to this person's latest button press (text, show_alert, url)."""
        if not self.callback_ids:
            return None
        return self.fake.callback_answer(self.callback_ids[-1])

    def _inline_target(self) -> BotMessage | None:
        for message in reversed(self.messages):
            if not message.deleted and message.labels:
                return message
        return None

    # ------------------------------------------------------------------ acting

    async def send(self, text: str, expect_reply: bool = True, reply_to: int | None = None) -> list[BotMessage]:
        if self.is_private:
            action: Callable[[], Any] = lambda: self.fake.user_sends_text(self.user_id, text, reply_to)
        else:
            action = lambda: self.fake.member_sends_text(
                self.chat_id, self.user_id, text, self.message_thread_id, reply_to
            )
        return await self._act(action, expect_reply, f"sent {text!r}")

    async def share_contact(
        self,
        phone: str | None = None,
        own: bool = True,
        contact_user_id: int | None | EllipsisType = ...,
        first_name: str | None = None,
        expect_reply: bool = True,
    ) -> list[BotMessage]:
        """Share a contact: the person's own by default; ``own=False`` shares someone else's."""
        number = phone or self.phone
        if not number:
            raise AssertionError("no phone number: pass one or set client.phone")
        owner: int | None | EllipsisType = contact_user_id
        if owner is ...:
            owner = self.user_id if own else self.user_id + 1_000_000
        self._require_private("share a contact")
        return await self._act(
            lambda: self.fake.user_shares_contact(self.user_id, number, owner, first_name),
            expect_reply,
            f"shared contact {number}",
        )

    async def press(self, label: str, expect_reply: bool = True) -> list[BotMessage]:
        """Press an inline button on the latest message that has any, else a reply-keyboard button."""
        target = self._inline_target()
        if target is not None:
            found = _match(target.labels, label)
            if found is not None:
                return await self._press_inline(target, found, expect_reply)
        keyboard = self.reply_keyboard
        if keyboard is not None:
            found = _match(keyboard.labels, label)
            if found is not None:
                return await self._press_reply(keyboard, found, expect_reply)
        available = {
            "inline": target.labels if target else [],
            "keyboard": keyboard.labels if keyboard else [],
        }
        raise AssertionError(f"no button {label!r}; available: {available}")

    async def press_on(self, message: BotMessage | int, label: str, expect_reply: bool = True) -> list[BotMessage]:
        message_id = message if isinstance(message, int) else message.message_id
        current = BotMessage.from_stored(self.fake.stored_message(self.chat_id, message_id))
        found = _match(current.labels, label)
        if found is None:
            raise AssertionError(f"message {message_id} has no button {label!r}; it has {current.labels}")
        return await self._press_inline(current, found, expect_reply)

    async def _press_inline(self, message: BotMessage, label: str, expect_reply: bool) -> list[BotMessage]:
        data = message.callback_data(label)
        if data is None:
            raise AssertionError(f"button {label!r} opens a URL or app, it sends no callback")

        def action() -> None:
            query_id = self.fake.member_presses(self.chat_id, self.user_id, message.message_id, data)
            self.callback_ids.append(query_id)

        return await self._act(action, expect_reply, f"pressed {label!r} ({data})")

    async def _press_reply(self, keyboard: ReplyKeyboard, label: str, expect_reply: bool) -> list[BotMessage]:
        if label == keyboard.contact_label:
            return await self.share_contact(expect_reply=expect_reply)
        return await self.send(label, expect_reply=expect_reply)

    async def send_sticker(self, emoji: str = "👍", expect_reply: bool = True) -> list[BotMessage]:
        self._require_private("send a sticker")
        return await self._act(lambda: self.fake.user_sends_sticker(self.user_id, emoji), expect_reply, "sent a sticker")

    async def send_photo(self, caption: str | None = None, expect_reply: bool = True) -> list[BotMessage]:
        if self.is_private:
            action: Callable[[], Any] = lambda: self.fake.user_sends_photo(self.user_id, caption)
        else:
            action = lambda: self.fake.member_sends_photo(
                self.chat_id, self.user_id, caption, self.message_thread_id
            )
        return await self._act(action, expect_reply, "sent a photo")

    async def send_voice(self, duration: int = 3, expect_reply: bool = True) -> list[BotMessage]:
        self._require_private("send a voice message")
        return await self._act(lambda: self.fake.user_sends_voice(self.user_id, duration), expect_reply, "sent a voice message")

    async def send_document(
        self,
        file_name: str = "statement.pdf",
        mime_type: str = "application/pdf",
        content: bytes = b"%PDF-1.4 fake",
        caption: str | None = None,
        expect_reply: bool = True,
    ) -> list[BotMessage]:
        self._require_private("send a document")
        return await self._act(
            lambda: self.fake.user_sends_document(self.user_id, file_name, mime_type, content, caption),
            expect_reply,
            f"sent document {file_name}",
        )

    async def edit(self, message_id: int, text: str, expect_reply: bool = True) -> list[BotMessage]:
        self._require_private("edit a message")
        return await self._act(
            lambda: self.fake.user_edits_message(self.user_id, message_id, text),
            expect_reply,
            f"edited message {message_id} to {text!r}",
        )

    def _require_private(self, what: str) -> None:
        if not self.is_private:
            raise NotImplementedError(f"a group member cannot {what} through ChatClient yet")

    # ------------------------------------------------------------------ terminal sandbox

    def _numbering(self) -> list[tuple[str, int | None, str]]:
        buttons: list[tuple[str, int | None, str]] = []
        target = self._inline_target()
        if target is not None:
            buttons += [("inline", target.message_id, label) for label in target.labels]
        keyboard = self.reply_keyboard
        if keyboard is not None:
            buttons += [("keyboard", None, label) for label in keyboard.labels]
        return buttons

    def render(self, msg: BotMessage | None = None) -> str:
        """Render ``msg`` (default: the latest bot message) numbered as :meth:`button_by_number` expects."""
        msg = msg or self.last
        if msg is None:
            return "(no messages from the bot)"
        return self.render_many([msg])

    def render_many(self, messages: list[BotMessage]) -> str:
        """Render ``messages`` in order; the buttons of the latest one that has any are numbered,
        then the reply keyboard's, as :meth:`button_by_number` expects."""
        target = next((m for m in reversed(messages) if m.labels and not m.deleted), None)
        keyboard = self.reply_keyboard
        self._numbered = [("inline", target.message_id, label) for label in target.labels] if target else []
        parts = [render_message(m, start=1 if m is target else None) for m in messages]
        if keyboard is not None:
            parts[-1] += "\n" + render_keyboard(keyboard, len(self._numbered) + 1)
            self._numbered += [("keyboard", None, label) for label in keyboard.labels]
        return "\n\n".join(parts)

    def url_by_number(self, n: int) -> str | None:
        """The URL that button ``n`` (numbered as :meth:`button_by_number`) opens; None when it sends a callback."""
        numbered = self._numbered if self._numbered is not None else self._numbering()
        if not 1 <= n <= len(numbered):
            raise AssertionError(f"no button number {n}; there are {len(numbered)}")
        kind, message_id, label = numbered[n - 1]
        if kind != "inline" or message_id is None:
            return None
        current = BotMessage.from_stored(self.fake.stored_message(self.chat_id, message_id))
        return next((url for row in inline_cells(current) for text, url in row if text == label), None)

    def button_by_number(self, n: int) -> str:
        """The label numbered ``n`` in the latest :meth:`render` (or on the latest buttons)."""
        numbered = self._numbered if self._numbered is not None else self._numbering()
        if not 1 <= n <= len(numbered):
            raise AssertionError(f"no button number {n}; there are {len(numbered)}")
        return numbered[n - 1][2]

    async def press_number(self, n: int, expect_reply: bool = True) -> list[BotMessage]:
        numbered = self._numbered if self._numbered is not None else self._numbering()
        if not 1 <= n <= len(numbered):
            raise AssertionError(f"no button number {n}; there are {len(numbered)}")
        kind, message_id, label = numbered[n - 1]
        if kind == "inline" and message_id is not None:
            return await self.press_on(message_id, label, expect_reply)
        keyboard = self.reply_keyboard
        if keyboard is None or label not in keyboard.labels:
            raise AssertionError(f"the keyboard with {label!r} is gone")
        return await self._press_reply(keyboard, label, expect_reply)

    # ------------------------------------------------------------------ waiting

    async def _act(self, action: Callable[[], Any], expect_reply: bool, what: str) -> list[BotMessage]:
        start = len(self.fake.events)
        action()
        await self._wait(self.fake.last_update_id, start, expect_reply, what)
        return self._results(start)

    def _results(self, start: int) -> list[BotMessage]:
        ids: list[int] = []
        for event in self.fake.events[start:]:
            if event.ok and event.chat_id == self.chat_id:
                ids += [i for i in event.touched if i not in ids]
        chat = self.fake.chat(self.chat_id)
        return [BotMessage.from_stored(chat.messages[i]) for i in ids]

    async def _wait(self, update_id: int, start: int, expect_reply: bool, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        fake = self.fake
        while True:
            event = fake.change_event()
            now = loop.time()
            fetched = fake.was_fetched(update_id)
            if self.handled is not None:
                if fetched and self.handled(update_id) and fake.in_flight == 0:
                    return
                wait = PROBE_INTERVAL
            else:
                reacted = not expect_reply or any(
                    e.chat_id == self.chat_id and e.method not in SILENT_METHODS for e in fake.events[start:]
                )
                if fetched and reacted and fake.in_flight == 0:
                    quiet_for = now - fake.last_activity
                    if quiet_for >= self.settle:
                        return
                    wait = self.settle - quiet_for
                else:
                    wait = deadline - now
            if now >= deadline:
                raise AssertionError(self._timeout_report(what, update_id, start))
            try:
                await asyncio.wait_for(event.wait(), min(wait, deadline - now))
            except TimeoutError:
                pass

    async def wait_quiet(self, settle: float | None = None) -> None:
        """Wait until every update was fetched and handled and no request is running.

        With a `handled` probe this is exact; without one, "handled" means nothing happened for
        ``settle`` seconds.
        """
        quiet = self.settle if settle is None else settle
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        fake = self.fake
        while True:
            event = fake.change_event()
            now = loop.time()
            idle = fake.all_fetched() and fake.in_flight == 0
            wait = deadline - now
            if idle and self.handled is not None:
                if self.handled(fake.last_update_id):
                    return
                wait = min(wait, PROBE_INTERVAL)
            elif idle:
                quiet_for = now - fake.last_activity
                if quiet_for >= quiet:
                    return
                wait = min(wait, quiet - quiet_for)
            if now >= deadline:
                raise AssertionError(f"the bot did not go quiet within {self.timeout}s")
            try:
                await asyncio.wait_for(event.wait(), wait)
            except TimeoutError:
                pass

    def _timeout_report(self, what: str, update_id: int, start: int) -> str:
        lines = [f"after the person {what} in chat {self.chat_id}, waited {self.timeout}s:"]
        if self.fake.was_dropped(update_id):
            lines.append("  the update was dropped: the bot's allowed_updates exclude its type")
        elif not self.fake.was_fetched(update_id):
            lines.append("  the update was never fetched by getUpdates (is the bot polling?)")
        else:
            lines.append("  the bot made no API call for this chat")
        other = [f"{e.method}(chat={e.chat_id}, ok={e.ok}, {e.description or ''})"
                 for e in self.fake.events[start:] if e.method != "getUpdates"]
        if other:
            lines.append("  calls meanwhile: " + "; ".join(other))
        lines.append("  the chat so far:")
        for message in self.messages[-10:]:
            lines.append("    " + render_message(message).replace("\n", "\n    "))
        return "\n".join(lines)
