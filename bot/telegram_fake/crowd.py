"""Many cardholders at once: the whole journey, driven over HTTP through the fake Bot API.

Used by `benchmarks/journey.py` and by the concurrency tests. Each cardholder does /start, shares
their contact, types their birth date, asks for /balance and /plans, opens a plan and accepts it;
every step waits until the bot has handled the update. The same crowd can be sent to a bare
aiogram echo bot on the same fake, to compare what an update costs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from .server import FakeTelegram

STEPS = ("start", "contact", "birth_date", "balance", "plans", "view_plan", "accept")
HANDOFF_STEPS = ("handoff", "claim", "agent_says", "cardholder_says")
STEP_TIMEOUT = 120.0
FIRST_USER_ID = 500_000


@dataclass(frozen=True)
class Cardholder:
    user_id: int
    phone: str
    birth_date: date


def cardholders(count: int, first_user_id: int = FIRST_USER_ID) -> list[Cardholder]:
    """Distinct phones and birth dates, one account each (see `account_rows`)."""
    return [
        Cardholder(first_user_id + index, f"+86139{index:08d}", date(1960, 1, 1) + timedelta(days=index % 15_000))
        for index in range(count)
    ]


def account_rows(people: list[Cardholder], now: datetime | None = None) -> list[dict[str, Any]]:
    """Account rows for `people`, ready for `insert(Account)`."""
    moment = now or datetime.now(timezone.utc)
    return [
        {
            "account_id": f"CROWD-{person.user_id}",
            "full_name": "Crowd Cardholder",
            "phone": person.phone,
            "birth_date": person.birth_date,
            "card_last4": f"{person.user_id % 10_000:04d}",
            "currency": "CNY",
            "statement_balance": Decimal("15000.00"),
            "overdue_amount": Decimal("12345.60"),
            "minimum_due": Decimal("1500.00"),
            "days_past_due": 45,
            "late_fee": Decimal("75.00"),
            "daily_interest_rate": Decimal("0.0005"),
            "locale": "en",
            "timezone": "Asia/Shanghai",
            "balance_version": 1,
            "updated_at": moment,
        }
        for person in people
    ]


class UpdateWaiter:
    """Wraps a dispatcher's `feed_update` so a cardholder can wait for its update to be handled."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._done: set[int] = set()
        feed = dispatcher.feed_update

        async def feed_update(bot: Bot, update: Update, **kwargs: Any) -> Any:
            try:
                return await feed(bot, update, **kwargs)
            finally:
                self._finish(update.update_id)

        dispatcher.feed_update = feed_update  # type: ignore[method-assign]

    def _finish(self, update_id: int) -> None:
        future = self._waiting.pop(update_id, None)
        if future is None:
            self._done.add(update_id)
        elif not future.done():
            future.set_result(None)

    async def wait(self, update_id: int, timeout: float = STEP_TIMEOUT) -> None:
        if update_id in self._done:
            self._done.discard(update_id)
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting[update_id] = future
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(update_id, None)


@dataclass
class CrowdReport:
    """What happened to a crowd: per-step latencies, unanswered steps, completed journeys."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {step: [] for step in (*STEPS, *HANDOFF_STEPS, "long_message")})
    unanswered: dict[str, int] = field(default_factory=lambda: {step: 0 for step in (*STEPS, *HANDOFF_STEPS, "long_message")})
    long_messages: CrowdReport | None = None
    """What the chat sending long messages meanwhile saw, when there was one."""
    completed: int = 0
    updates: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def unanswered_total(self) -> int:
        return sum(self.unanswered.values())

    @property
    def updates_per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0


Replies = list[dict[str, Any]]
Expect = Callable[[Replies], bool]


class CrowdDriver:
    """Acts as many people at once against one fake; `journey` decides what each one does."""

    def __init__(self, fake: FakeTelegram, waiter: UpdateWaiter, report: CrowdReport) -> None:
        self.fake = fake
        self.waiter = waiter
        self.report = report

    def replies_after(self, chat_id: int, message_id: int) -> Replies:
        chat = self.fake.chat(chat_id)
        return [
            stored.payload
            for key, stored in chat.messages.items()
            if key > message_id and stored.from_bot and not stored.deleted
        ]

    async def step(self, name: str, chat_id: int, act: Callable[[], int], expect: Expect) -> Replies | None:
        """Do one thing, wait until the bot handled it; the bot's new messages, None if unanswered."""
        last = max(self.fake.chat(chat_id).messages, default=0)
        began = time.perf_counter()
        update_id = act()
        self.report.updates += 1
        try:
            await self.waiter.wait(update_id)
        except TimeoutError:
            self.report.unanswered[name] += 1
            return None
        self.report.latencies[name].append(time.perf_counter() - began)
        replies = self.replies_after(chat_id, last)
        if not expect(replies):
            self.report.unanswered[name] += 1
            return None
        return replies

    def send(self, user_id: int, text: str) -> int:
        return self._enqueued(lambda: self.fake.user_sends_text(user_id, text))

    def _enqueued(self, act: Callable[[], Any]) -> int:
        act()
        return self.fake.last_update_id

    def share_contact(self, user_id: int, phone: str) -> int:
        return self._enqueued(lambda: self.fake.user_shares_contact(user_id, phone))

    def press(self, user_id: int, message_id: int, data: str) -> int:
        return self._enqueued(lambda: self.fake.user_presses(user_id, message_id, data))

    def member_presses(self, chat_id: int, user_id: int, message_id: int, data: str) -> int:
        return self._enqueued(lambda: self.fake.member_presses(chat_id, user_id, message_id, data))

    def member_sends(self, chat_id: int, user_id: int, text: str, thread_id: int | None) -> int:
        return self._enqueued(lambda: self.fake.member_sends_text(chat_id, user_id, text, message_thread_id=thread_id))

    def chat_has(self, chat_id: int, text: str) -> bool:
        return any(stored.payload.get("text") == text for stored in self.fake.chat(chat_id).messages.values())

    def case_card(self, desk_chat_id: int, account_id: str) -> tuple[int, str, int | None] | None:
        """The (message id, claim button data, topic) of the card naming this account."""
        for stored in self.fake.chat(desk_chat_id).messages.values():
            if stored.from_bot and account_id in (stored.payload.get("text") or ""):
                found = button_of([stored.payload], "case:claim")
                if found is not None:
                    return found[0], found[1], stored.payload.get("message_thread_id")
        return None


def button_of(replies: Replies, prefix: str, last: bool = False) -> tuple[int, str] | None:
    """The (message id, callback data) of the first (or last) button whose data starts with prefix."""
    found = [
        (reply["message_id"], button["callback_data"])
        for reply in replies
        for row in (reply.get("reply_markup") or {}).get("inline_keyboard", [])
        for button in row
        if str(button.get("callback_data", "")).startswith(prefix)
    ]
    if not found:
        return None
    return found[-1] if last else found[0]


def _says(fragment: str) -> Expect:
    return lambda replies: any(fragment in (reply.get("text") or "") for reply in replies)


def _has_button(prefix: str) -> Expect:
    return lambda replies: button_of(replies, prefix) is not None


def birth_date_text(day: date) -> str:
    return f"{day.day} {day.strftime('%B')} {day.year}"


async def settle_debt(driver: CrowdDriver, person: Cardholder) -> bool:
    """The project's journey for one cardholder: True when the arrangement was confirmed."""
    uid = person.user_id
    if await driver.step("start", uid, lambda: driver.send(uid, "/start"), _says("confirm it")) is None:
        return False
    if await driver.step("contact", uid, lambda: driver.share_contact(uid, person.phone), _says("date of birth")) is None:
        return False
    typed = birth_date_text(person.birth_date)
    if await driver.step("birth_date", uid, lambda: driver.send(uid, typed), _says("verified")) is None:
        return False
    if await driver.step("balance", uid, lambda: driver.send(uid, "/balance"), _says("Overdue amount")) is None:
        return False
    menu = await driver.step("plans", uid, lambda: driver.send(uid, "/plans"), _has_button("offer:view:"))
    if menu is None:
        return False
    plan = button_of(menu, "offer:view:", last=True)
    assert plan is not None
    proposal = await driver.step("view_plan", uid, lambda: driver.press(uid, *plan), _has_button("offer:accept:"))
    if proposal is None:
        return False
    accept = button_of(proposal, "offer:accept:")
    assert accept is not None
    return await driver.step("accept", uid, lambda: driver.press(uid, *accept), _says("Done")) is not None


def relay_text(person: Cardholder, speaker: str) -> str:
    return f"{speaker} of case CROWD-{person.user_id} speaking"


def desk_journey(desk_chat_id: int, agent_id: int) -> Journey:
    """`settle_debt`, then the cardholder asks for a person, an agent claims the case, and each
    writes once to the other through the bot (`relay_text`)."""

    async def journey(driver: CrowdDriver, person: Cardholder) -> bool:
        uid = person.user_id
        if not await settle_debt(driver, person):
            return False
        if await driver.step("handoff", uid, lambda: driver.send(uid, "/agent"), _says("queue")) is None:
            return False
        card = driver.case_card(desk_chat_id, f"CROWD-{uid}")
        if card is None:
            driver.report.unanswered["handoff"] += 1
            return False
        message_id, claim, thread = card
        claimed = await driver.step(
            "claim", desk_chat_id, lambda: driver.member_presses(desk_chat_id, agent_id, message_id, claim), lambda _: True
        )
        if claimed is None:
            return False
        to_cardholder = relay_text(person, "agent")
        said = await driver.step(
            "agent_says", desk_chat_id,
            lambda: driver.member_sends(desk_chat_id, agent_id, to_cardholder, thread), lambda _: True,
        )
        if said is None or not driver.chat_has(uid, to_cardholder):
            return False
        to_agent = relay_text(person, "cardholder")
        if await driver.step("cardholder_says", uid, lambda: driver.send(uid, to_agent), lambda _: True) is None:
            return False
        return driver.chat_has(desk_chat_id, to_agent)

    return journey


async def echo_journey(driver: CrowdDriver, person: Cardholder) -> bool:
    """The same updates, in the same order, for a bot that answers each one with an "echo" button."""
    uid = person.user_id
    texts = {"start": "/start", "birth_date": birth_date_text(person.birth_date), "balance": "/balance", "plans": "/plans"}
    button: tuple[int, str] | None = None
    for name in STEPS:
        if name == "contact":
            act = partial(driver.share_contact, uid, person.phone)
        elif name in texts:
            act = partial(driver.send, uid, texts[name])
        else:
            assert button is not None
            act = partial(driver.press, uid, *button)
        replies = await driver.step(name, uid, act, _has_button("echo"))
        if replies is None:
            return False
        button = button_of(replies, "echo")
    return True


Journey = Callable[[CrowdDriver, Cardholder], Awaitable[bool]]

LONG_MESSAGES = (
    "a" * 4096,
    ("I cannot pay this month because " * 200)[:4096],
    "😀" * 4096,
    "我无法按时还款" * 585,
    ("1 " * 2048),
)
"""Messages of the longest length Telegram allows, of each kind that once cost more than linear time."""


async def send_long_messages(driver: CrowdDriver, person: Cardholder, count: int) -> None:
    """One chat sending `count` 4,096-character messages, one after another, while the crowd runs."""
    uid = person.user_id
    for index in range(count):
        text = LONG_MESSAGES[index % len(LONG_MESSAGES)]
        await driver.step("long_message", uid, partial(driver.send, uid, text), lambda replies: bool(replies))


async def run_crowd(
    fake: FakeTelegram, waiter: UpdateWaiter, people: list[Cardholder], journey: Journey, long_messages: int = 0
) -> CrowdReport:
    """Everyone starts at the same moment; returns when every journey ended.

    With `long_messages`, one more chat sends that many 4,096-character messages meanwhile; its
    latencies are reported apart ("long_message") and its updates are not counted in the crowd's.
    """
    report = CrowdReport()
    driver = CrowdDriver(fake, waiter, report)
    for person in people:
        fake.add_user(person.user_id, first_name="Crowd", language_code="en")
    noisy = Cardholder(people[0].user_id + len(people) + 1_000, "+8613700000000", date(1970, 1, 1))
    fake.add_user(noisy.user_id, first_name="Noisy", language_code="en")
    report.long_messages = CrowdReport()
    noise = asyncio.ensure_future(send_long_messages(CrowdDriver(fake, waiter, report.long_messages), noisy, long_messages))
    began, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(journey(driver, person) for person in people))
    await noise
    report.seconds = time.perf_counter() - began
    report.cpu_seconds = time.process_time() - cpu
    report.completed = sum(results)
    return report
