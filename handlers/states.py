"""The cardholder's journeys as FSM state groups."""

from aiogram.fsm.state import State, StatesGroup


class Verification(StatesGroup):
    sharing_phone = State()
    typing_birth_date = State()


class Negotiation(StatesGroup):
    typing_monthly_amount = State()


class PromiseToPay(StatesGroup):
    choosing_date = State()
    choosing_amount = State()


PRIVATE_STEPS = {Verification.typing_birth_date.state: "[birth date]"}
"""Steps whose every message is personal data, and what the audit trail records instead of it."""
