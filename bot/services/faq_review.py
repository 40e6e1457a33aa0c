"""What the knowledge base did and did not answer, so the bank can add the phrasings people use.

Each question the matcher sees is recorded in the audit trail (masked, like everything there):
answered with an entry, or "not sure" with the closest topics offered. The topic a person then picks
from the list, and whether an answer helped, are recorded too. `questions_to_review` pairs every
"not sure" with the topic chosen next in the same chat: a phrasing to add to that entry's questions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditEvent
from bot.domain.faq import MatchResult
from bot.services.audit import AuditTrail

DECISION = "decision"
ANSWERED = "faq_answered"
NOT_SURE = "faq_not_sure"
TOPIC_CHOSEN = "faq_topic"
FEEDBACK = "faq_feedback"
QUESTION_LIMIT = 1000
"""Longer texts are cut: the audit payload must stay whole JSON within the audit's limit."""
CHOICE_WINDOW = timedelta(minutes=30)
"""A topic picked this long after a "not sure" is taken as what the question meant."""


def record_question(audit: AuditTrail, chat_id: int, locale: str, text: str, result: MatchResult) -> None:
    payload = {
        "locale": locale,
        "text": text[:QUESTION_LIMIT],
        "entry": result.best.id if result.best is not None else None,
        "offered": [entry.id for entry, _score in result.candidates],
        "score": round(result.score, 3),
    }
    kind = ANSWERED if result.best is not None else NOT_SURE
    audit.record(DECISION, kind, chat_id, json.dumps(payload, ensure_ascii=False))


def record_topic(audit: AuditTrail, chat_id: int, locale: str, entry_id: str) -> None:
    audit.record(DECISION, TOPIC_CHOSEN, chat_id, json.dumps({"locale": locale, "entry": entry_id}))


def record_feedback(audit: AuditTrail, chat_id: int, entry_id: str, helpful: bool) -> None:
    audit.record(DECISION, FEEDBACK, chat_id, json.dumps({"entry": entry_id, "helpful": helpful}))


@dataclass(frozen=True)
class QuestionToReview:
    at: datetime
    locale: str
    text: str
    offered: tuple[str, ...]
    chosen: str | None
    """The topic the person picked next, or None when they picked none (or asked for a person)."""


async def questions_to_review(session: AsyncSession, since: datetime | None = None) -> list[QuestionToReview]:
    """Every "not sure" since `since`, oldest first, with the topic picked next in the same chat."""
    query = select(AuditEvent).where(
        AuditEvent.direction == DECISION, AuditEvent.kind.in_((NOT_SURE, TOPIC_CHOSEN))
    )
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    events = (await session.scalars(query.order_by(AuditEvent.at, AuditEvent.id))).all()
    questions: list[QuestionToReview] = []
    waiting: dict[int | None, tuple[int, datetime]] = {}
    for event in events:
        payload = json.loads(event.payload)
        if event.kind == NOT_SURE:
            waiting[event.chat_id] = (len(questions), event.at)
            questions.append(
                QuestionToReview(event.at, payload["locale"], payload["text"], tuple(payload["offered"]), None)
            )
        elif event.chat_id in waiting:
            position, asked = waiting.pop(event.chat_id)
            if event.at - asked <= CHOICE_WINDOW:
                question = questions[position]
                questions[position] = QuestionToReview(
                    question.at, question.locale, question.text, question.offered, payload["entry"]
                )
    return questions
