"""Only the agent who claimed a case acts on it: approvals, offers, messages, notes, resolution."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import ManualClock

from bot.db.models import Case, CaseEvent, Offer, Relay
from bot.services.arrangements import NEEDS_APPROVAL
from bot.services.cases import CaseService, NotCaseOwner
from bot.telegram_fake import BotMessage, ChatClient
from tests.conftest import BotHarness
from tests.test_handoff_journey import AGENTS, DESK, agent, bank, only_case, signed_in  # noqa: F401 (bank: fixture)

pytestmark = pytest.mark.database

OWNER, OTHER = AGENTS


@dataclass(frozen=True)
class Snapshot:
    """Everything an agent's action could change."""

    case: tuple[str, int | None, str | None]
    events: int
    offers: tuple[tuple[int, str], ...]
    relays: int
    to_cardholder: int


async def snapshot(bank: BotHarness, cardholder: ChatClient) -> Snapshot:
    async with bank.session_factory() as session:
        case = await session.scalar(select(Case))
        assert case is not None
        events = await session.scalar(select(func.count()).select_from(CaseEvent))
        offers = tuple((offer_id, made_by) for offer_id, made_by in await session.execute(select(Offer.id, Offer.made_by).order_by(Offer.id)))
        relays = await session.scalar(select(func.count()).select_from(Relay))
    return Snapshot((case.status, case.agent_id, case.outcome), events, offers, relays, len(cardholder.messages))


async def outside_policy_case(bank: BotHarness) -> tuple[ChatClient, Case, BotMessage]:
    """A cardholder whose request waits for an agent's approval, and the proposal in the desk."""
    cardholder = await signed_in(bank, "en")
    await cardholder.send("/plans")
    await cardholder.press("💬")
    await cardholder.send("170")
    proposal = next(m for m in bank.fake.bot_messages(DESK) if "Proposal:" in m.text)
    return cardholder, await only_case(bank), proposal


async def every_action(
    bank: BotHarness, desk_agent: ChatClient, case: Case, proposal: BotMessage, typing: bool = True
) -> list[str]:
    """The agent tries each action on the case (typing in its topic unless it is closed); the desk's answers."""
    answers = []
    for label in ("Approve", "Change", "Decline"):
        await desk_agent.press_on(proposal, label, expect_reply=False)
        answers.append((desk_agent.last_callback_answer or {}).get("text", ""))
    card = BotMessage.from_stored(bank.fake.stored_message(DESK, case.card_message_id))
    if any("Resolve" in label for label in card.labels):
        await desk_agent.press_on(case.card_message_id, "Resolve", expect_reply=False)
        answers.append((desk_agent.last_callback_answer or {}).get("text", ""))
    for text in ("/offer 36", "Hello, I can help", "/note checked the receipt", "/resolve paid") if typing else ():
        replies = await desk_agent.send(text, expect_reply=False)
        answers.append(replies[-1].text if replies else "")
    return answers


async def test_another_agent_cannot_act_on_a_claimed_case(bank: BotHarness) -> None:
    cardholder, case, proposal = await outside_policy_case(bank)
    await agent(bank, case, OWNER).press_on(case.card_message_id, "Claim", expect_reply=False)
    before = await snapshot(bank, cardholder)
    assert before.case[:2] == ("claimed", OWNER)

    answers = await every_action(bank, agent(bank, case, OTHER), case, proposal)
    assert len(answers) == 8
    for answer in answers:
        assert answer == f"This case is handled by agent {OWNER}: only they can act on it.", answers
    assert await snapshot(bank, cardholder) == before, "nothing changed, nothing reached the cardholder"
    assert before.offers[-1][1] == NEEDS_APPROVAL

    await agent(bank, case, OWNER).press_on(proposal, "Approve", expect_reply=False)
    assert "offers you this plan" in cardholder.messages[-1].text, "the owner still can"


async def test_nobody_acts_on_a_case_before_claiming_it(bank: BotHarness) -> None:
    cardholder, case, proposal = await outside_policy_case(bank)
    before = await snapshot(bank, cardholder)
    assert before.case[0] == "waiting"

    answers = await every_action(bank, agent(bank, case, OWNER), case, proposal)
    assert len(answers) == 7, "no Resolve button before a claim"
    for answer in answers:
        assert answer == "Claim the case first: only the agent who claimed it can act on it.", answers
    assert await snapshot(bank, cardholder) == before

    await agent(bank, case, OWNER).press_on(case.card_message_id, "Claim", expect_reply=False)
    await agent(bank, case, OWNER).press_on(proposal, "Approve", expect_reply=False)
    assert "offers you this plan" in cardholder.messages[-1].text


async def test_a_resolved_case_takes_no_more_actions(bank: BotHarness) -> None:
    cardholder, case, proposal = await outside_policy_case(bank)
    owner = agent(bank, case, OWNER)
    await owner.press_on(case.card_message_id, "Claim", expect_reply=False)
    await owner.send("/resolve done", expect_reply=False)
    before = await snapshot(bank, cardholder)
    assert before.case == ("resolved", OWNER, "done")
    answers = await every_action(bank, owner, case, proposal, typing=False)
    assert len(answers) == 4 and all(answer == "This case is resolved." for answer in answers), answers
    assert await snapshot(bank, cardholder) == before


@pytest.mark.parametrize(
    ("status", "owner", "refused"),
    [("claimed", OWNER, None), ("claimed", OTHER, "claimed"), ("waiting", None, "waiting"), ("resolved", OWNER, "resolved")],
)
def test_the_rule(status: str, owner: int | None, refused: str | None) -> None:
    case = Case(id=1, status=status, agent_id=owner)
    if refused is None:
        assert CaseService.ensure_owner(case, OWNER) is case
        return
    with pytest.raises(NotCaseOwner) as error:
        CaseService.ensure_owner(case, OWNER)
    assert error.value.case is case and error.value.case.status == refused


async def test_the_service_refuses_notes_and_resolution_by_another_agent(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session, session.begin():
        cases = CaseService(session, ManualClock())
        case = (await cases.open(1001, None, "person", "en")).case
        assert (await cases.claim(case.id, OWNER)).won
        for act in (lambda: cases.note(case, OTHER, "mine now"), lambda: cases.resolve(case, OTHER, "done")):
            with pytest.raises(NotCaseOwner):
                await act()
        assert case.status == "claimed" and case.outcome is None
        await cases.note(case, OWNER, "checked")
    async with session_factory() as session:
        kinds = [event.kind for event in await CaseService(session, ManualClock()).transcript(case.id)]
    assert kinds == ["trigger", "claim", "note"]
