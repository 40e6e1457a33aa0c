"""What the cardholder reads stays within Telegram's limits, even for the longest schedule."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bot.domain.calculator import amortizing_plan
from bot.i18n import create_i18n
from bot.services.arrangements import OfferKind, Proposal
from bot.settings import SUPPORTED_LOCALES
from handlers.keyboards import OfferAction
from handlers.plans import proposal_text

TELEGRAM_TEXT_LIMIT = 4096


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("currency", ["RUB", "CNY", "JPY", "USD"])
def test_the_longest_schedule_fits_in_one_message(locale: str, currency: str) -> None:
    plan = amortizing_plan(Decimal("987654321"), currency, 60, Decimal("0.06"), start=date(2026, 12, 31))
    proposal = Proposal(2**31, OfferKind.PLAN, currency, plan.total_paid, plan.schedule[0].due_date, plan)
    i18n = create_i18n("en")
    with i18n.context(), i18n.use_locale(locale):
        text = proposal_text(proposal)
    assert text.count("\n") > 60
    assert len(text) < TELEGRAM_TEXT_LIMIT


def test_offer_buttons_fit_telegrams_callback_limit() -> None:
    for action in ("view", "accept", "replace"):
        assert len(OfferAction(action=action, offer_id=2**31 - 1).pack().encode()) <= 64  # the largest INTEGER key
