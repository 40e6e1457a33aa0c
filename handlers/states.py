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
