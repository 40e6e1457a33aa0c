"""Agents' offers stay within the account's pack, or a supervisor approves them first (once)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import ManualClock
from bot.db.models import Account, Arrangement, AuditEvent, Case, CaseEvent, Offer
from bot.domain.policy import load_policy
from bot.services.arrangements import DECLINED, PENDING, ArrangementService, Decision, OutsidePack
from bot.settings import DEFAULT_POLICY_FILE, load_settings
from bot.telegram_fake import BotMessage, ChatClient, FakeTelegram
from tests.conftest import BOT_TOKEN, BotHarness, add_accounts, make_account

pytestmark = pytest.mark.database

DESK = -1001234567890
OWNER, SUPERVISOR, SECOND_SUPERVISOR = 501, 601, 602
US_PHONE = "+14155550132"
POLICY = load_policy(DEFAULT_POLICY_FILE)


def us_account() -> Account:
    return make_account(
        account_id="US-1", phone=US_PHONE, currency="USD", locale="en", card_last4="1111",
        statement_balance=Decimal("5200.00"), overdue_amount=Decimal("1234.00"), minimum_due=Decimal("260.00"),
    )


async def desk_bank(fake: FakeTelegram, database_url: str, supervisors: str) -> BotHarness:
    settings = load_settings(
        _env_file=None, bot_token=BOT_TOKEN, telegram_api_url=fake.base_url, database_url=database_url,
        agent_chat_id=DESK, agent_ids=f"{OWNER}", supervisor_ids=supervisors,
    )
    fake.add_forum_group(DESK)
    for user_id in (OWNER, SUPERVISOR, SECOND_SUPERVISOR):
        fake.add_user(user_id, first_name=f"Staff{user_id}")
    harness = BotHarness(fake, settings, ManualClock())
    await harness.start()
    await harness.add_accounts(us_account())
    return harness


@pytest.fixture
async def bank(fake: FakeTelegram, database_url: str) -> BotHarness:
    harness = await desk_bank(fake, database_url, f"{SUPERVISOR},{SECOND_SUPERVISOR}")
    yield harness
    await harness.stop()


@pytest.fixture
async def bank_without_supervisors(fake: FakeTelegram, database_url: str) -> BotHarness:
    harness = await desk_bank(fake, database_url, "")
    yield harness
    await harness.stop()


def member(bank: BotHarness, case: Case, user_id: int) -> ChatClient:
    return ChatClient(bank.fake, user_id, chat_id=DESK, message_thread_id=case.topic_id, handled=bank.handled)


async def claimed(bank: BotHarness) -> tuple[ChatClient, ChatClient, Case]:
    cardholder = bank.cardholder(language_code="en", phone=US_PHONE)
    await cardholder.send("/start")
    await cardholder.share_contact(US_PHONE)
    await cardholder.send("1985-03-07")
    await cardholder.send("/agent")
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case))
    owner = member(bank, case, OWNER)
    await owner.press_on(case.card_message_id, "Claim", expect_reply=False)
    return cardholder, owner, case


def supervisor_request(bank: BotHarness, case: Case) -> BotMessage:
    return next(
        m for m in reversed(bank.fake.bot_messages(DESK))
        if m.message_thread_id == case.topic_id and "outside the policy" in m.text and m.labels
    )


async def offers(bank: BotHarness) -> list[tuple[int, str]]:
    async with bank.session_factory() as session:
        return list(await session.execute(select(Offer.id, Offer.made_by).order_by(Offer.id)))


async def events(bank: BotHarness, kind: str) -> list[CaseEvent]:
    async with bank.session_factory() as session:
        return list(await session.scalars(select(CaseEvent).where(CaseEvent.kind == kind)))


async def test_an_offer_within_the_pack_is_sent(bank: BotHarness) -> None:
    cardholder, owner, _case = await claimed(bank)
    # the US pack's 36 months at its 7.90 %, and at 5 %, below it
    for command in ("/offer 36", "/offer 36 0.05"):
        sent = await owner.send(command, expect_reply=False)
        assert "Offer sent: 36 months" in sent[-1].text, sent[-1].text
        assert "A person from the bank offers you this plan" in cardholder.messages[-1].text
    assert [made_by for _, made_by in await offers(bank)][-2:] == [f"agent:{OWNER}"] * 2
    assert "Interest: 5.00% a year" not in cardholder.messages[-1].text  # the agreement comes on Accept
    assert "Annualized rate (APR): 5.00%" in cardholder.messages[-1].text


async def test_an_offer_above_the_pack_rate_is_approved_then_sent(bank: BotHarness) -> None:
    cardholder, owner, case = await claimed(bank)
    before = len(cardholder.messages)
    answer = await owner.send("/offer 36 0.12", expect_reply=False)
    assert "12.00% a year is above the policy's 7.90% for 36 months" in answer[-1].text
    assert "waits for a supervisor's approval" in answer[-1].text
    assert len(cardholder.messages) == before, "nothing reaches the cardholder before the approval"
    (offer_id, made_by), = [row for row in await offers(bank) if row[1].startswith(PENDING)]
    assert made_by == f"{PENDING}{OWNER}"

    forged = bank.fake.user_presses(cardholder.user_id, cardholder.last.message_id, f"offer:accept:{offer_id}", forged=True)
    await cardholder.wait_quiet()
    assert "not available" in bank.fake.callback_answer(forged)["text"], "a pending offer does not exist for the cardholder"

    request = supervisor_request(bank, case)
    assert "Agent 501 asks to offer a plan outside the policy" in request.text and "36 months" in request.text
    await member(bank, case, SUPERVISOR).press_on(request, "Approve", expect_reply=False)
    assert "A person from the bank offers you this plan" in cardholder.messages[-1].text
    assert "Annualized rate (APR): 12.00%" in cardholder.messages[-1].text
    topic = [m.text for m in bank.fake.bot_messages(DESK) if m.message_thread_id == case.topic_id]
    assert f"Approved by supervisor {SUPERVISOR}." in topic and any(text.startswith("Offer sent: 36 months") for text in topic)
    assert not BotMessage.from_stored(bank.fake.stored_message(DESK, request.message_id)).labels, "the buttons are gone"

    accepted = await cardholder.press_on(cardholder.messages[-1], "Accept")
    assert any("Hardship installment agreement" in m.text for m in accepted)
    approvals = await events(bank, "approval")
    assert [(event.actor, event.text) for event in approvals] == [(f"supervisor:{SUPERVISOR}", f"offer {offer_id} of agent {OWNER}")]
    async with bank.session_factory() as session:
        audit = (await session.scalars(select(AuditEvent).where(AuditEvent.direction == "decision"))).all()
    assert [(event.kind, event.payload) for event in audit] == [
        ("offer_approved", f"offer {offer_id} of agent {OWNER}: supervisor {SUPERVISOR}")
    ]


async def test_an_offer_outside_the_pack_terms_is_declined_and_never_sent(bank: BotHarness) -> None:
    cardholder, owner, case = await claimed(bank)
    before = len(cardholder.messages)
    answer = await owner.send("/offer 18 0.05", expect_reply=False)
    assert "18 months is not a term of the policy for this account (its terms: 6, 12, 24, 36, 48, 60 months)" in answer[-1].text
    request = supervisor_request(bank, case)
    await member(bank, case, SUPERVISOR).press_on(request, "Decline", expect_reply=False)
    assert len(cardholder.messages) == before
    topic = [m.text for m in bank.fake.bot_messages(DESK) if m.message_thread_id == case.topic_id]
    assert f"Declined by supervisor {SUPERVISOR}: the offer was not sent to the cardholder." in topic
    (offer_id, made_by), = await offers(bank)
    assert made_by == f"{DECLINED}{OWNER}"
    forged = bank.fake.user_presses(cardholder.user_id, cardholder.last.message_id, f"offer:accept:{offer_id}", forged=True)
    await cardholder.wait_quiet()
    assert "not available" in bank.fake.callback_answer(forged)["text"]
    assert [event.actor for event in await events(bank, "decline")] == [f"supervisor:{SUPERVISOR}"]
    async with bank.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Arrangement)) == 0


async def test_without_supervisors_an_offer_outside_the_pack_is_refused(bank_without_supervisors: BotHarness) -> None:
    bank = bank_without_supervisors
    cardholder, owner, _case = await claimed(bank)
    before = len(cardholder.messages)
    answer = await owner.send("/offer 36 0.12", expect_reply=False)
    assert answer[-1].text.startswith("Not sent: 12.00% a year is above the policy's 7.90% for 36 months.")
    assert "no supervisor is set up (SUPERVISOR_IDS)" in answer[-1].text
    assert len(cardholder.messages) == before and await offers(bank) == []
    assert len(await events(bank, "offer_refused")) == 1
    sent = await owner.send("/offer 36 0.079", expect_reply=False)
    assert "Offer sent: 36 months" in sent[-1].text, "at the pack's own rate it goes"


async def test_a_term_outside_the_pack_needs_a_rate(bank: BotHarness) -> None:
    _cardholder, owner, _case = await claimed(bank)
    answer = await owner.send("/offer 18", expect_reply=False)
    assert answer[-1].text.startswith("No offer: 18 months is not a term the policy offers")
    assert await offers(bank) == []


async def test_only_another_supervisor_decides(bank: BotHarness) -> None:
    cardholder, owner, case = await claimed(bank)
    await owner.send("/offer 36 0.12", expect_reply=False)
    request = supervisor_request(bank, case)
    await owner.press_on(request, "Approve", expect_reply=False)
    assert owner.last_callback_answer["text"] == "Only a supervisor can approve or decline this offer."
    outsider = 777
    bank.fake.add_user(outsider, first_name="Outsider")
    await member(bank, case, outsider).press_on(request, "Approve", expect_reply=False)
    assert [made_by for _, made_by in await offers(bank)] == [f"{PENDING}{OWNER}"]
    forged = bank.fake.member_presses(DESK, OWNER, request.message_id, f"prop:approve:{(await offers(bank))[0][0]}", forged=True)
    await owner.wait_quiet()
    assert [made_by for _, made_by in await offers(bank)] == [f"{PENDING}{OWNER}"], "an agent's approve button does not apply"
    assert bank.fake.callback_answer(forged) is not None


async def test_a_supervisor_does_not_approve_their_own_offer(fake: FakeTelegram, database_url: str) -> None:
    bank = await desk_bank(fake, database_url, f"{OWNER},{SUPERVISOR}")
    try:
        cardholder, owner, case = await claimed(bank)
        before = len(cardholder.messages)
        await owner.send("/offer 36 0.12", expect_reply=False)
        request = supervisor_request(bank, case)
        await owner.press_on(request, "Approve", expect_reply=False)
        assert owner.last_callback_answer["text"] == "You made this offer: another supervisor decides it."
        assert len(cardholder.messages) == before
        await member(bank, case, SUPERVISOR).press_on(request, "Approve", expect_reply=False)
        assert "offers you this plan" in cardholder.messages[-1].text
    finally:
        await bank.stop()


@pytest.mark.parametrize("second", [("approve", SECOND_SUPERVISOR), ("decline", SECOND_SUPERVISOR), ("approve", SUPERVISOR)])
async def test_two_decisions_at_once_one_wins(bank: BotHarness, second: tuple[str, int]) -> None:
    cardholder, owner, case = await claimed(bank)
    await owner.send("/offer 36 0.12", expect_reply=False)
    request = supervisor_request(bank, case)
    (offer_id, _), = await offers(bank)
    before = len(cardholder.messages)
    action, presser = second
    first_query = bank.fake.member_presses(DESK, SUPERVISOR, request.message_id, f"sup:approve:{offer_id}:{case.id}")
    second_query = bank.fake.member_presses(DESK, presser, request.message_id, f"sup:{action}:{offer_id}:{case.id}")
    await owner.wait_quiet()
    decided = await events(bank, "approval") + await events(bank, "decline")
    assert len(decided) == 1, "one decision, whoever pressed first"
    made_by = (await offers(bank))[0][1]
    sent = len(cardholder.messages) - before
    assert (made_by, sent) in ((f"agent:{OWNER}", 1), (f"{DECLINED}{OWNER}", 0))
    answers = [(bank.fake.callback_answer(query) or {}).get("text") for query in (first_query, second_query)]
    assert "This offer has already been decided." in answers
    topic = [m.text for m in bank.fake.bot_messages(DESK) if m.message_thread_id == case.topic_id]
    assert sum(text.startswith(("Approved by supervisor", "Declined by supervisor")) for text in topic) == 1


async def test_the_service_decides_once_under_concurrent_sessions(session_factory: async_sessionmaker[AsyncSession]) -> None:
    clock = ManualClock()
    await add_accounts(session_factory, us_account())
    async with session_factory() as session, session.begin():
        account = await session.scalar(select(Account))
        service = ArrangementService(session, POLICY, clock)
        wanted = service.agent_plan(account, 36, Decimal("0.12"))
        assert wanted.outside is OutsidePack.RATE and wanted.limit == Decimal("7.90")
        offer_id = (await service.agent_offer(account, wanted, OWNER, 1001)).offer_id

    async def decide(supervisor: int, approve: bool) -> Decision:
        async with session_factory() as session, session.begin():
            account = await session.scalar(select(Account))
            result = await ArrangementService(session, POLICY, clock).supervise(account, offer_id, supervisor, approve)
            await asyncio.sleep(0.05)  # hold the transaction open while the other one tries
            return result.decision

    decisions = await asyncio.gather(decide(SUPERVISOR, True), decide(SECOND_SUPERVISOR, False), decide(SUPERVISOR, True))
    assert decisions.count(Decision.ALREADY_DECIDED) == 2, decisions
    async with session_factory() as session:
        made_by = await session.scalar(select(Offer.made_by).where(Offer.id == offer_id))
    winner = next(decision for decision in decisions if decision is not Decision.ALREADY_DECIDED)
    assert made_by == (f"agent:{OWNER}" if winner is Decision.APPROVED else f"{DECLINED}{OWNER}")


def test_within_the_pack_rules() -> None:
    """The pack's terms and rates decide: a rate at most the pack's for the term, a term it has."""
    account = us_account()
    service = ArrangementService(None, POLICY, ManualClock())  # type: ignore[arg-type]
    assert service.agent_plan(account, 36, None).outside is None
    assert service.agent_plan(account, 36, Decimal("0.079")).outside is None
    assert service.agent_plan(account, 36, Decimal("0.0791")).outside is OutsidePack.RATE
    assert service.agent_plan(account, 18, Decimal("0.01")).outside is OutsidePack.TERM
    # a CN account's 12 months are a flat plan: an amortizing offer within its annualized 13.03 %
    cn = make_account()
    flat = service.agent_plan(cn, 12, None)
    assert flat.plan.method == "flat" and flat.limit == flat.plan.annual_rate
    assert service.agent_plan(cn, 12, flat.limit / 100).outside is None
    assert service.agent_plan(cn, 12, flat.limit / 100 + Decimal("0.0001")).outside is OutsidePack.RATE


def test_supervisor_ids_setting() -> None:
    settings = load_settings(_env_file=None, supervisor_ids="601, 602")
    assert settings.supervisor_ids == frozenset({601, 602})
    assert load_settings(_env_file=None).supervisor_ids == frozenset()
    with pytest.raises(Exception, match="comma-separated Telegram user ids"):
        load_settings(_env_file=None, supervisor_ids="601;602")
