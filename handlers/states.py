"""The cardholder's journeys as FSM state groups."""

from aiogram.fsm.state import State, StatesGroup


class Verification(StatesGroup):
    sharing_phone = State()
    typing_birth_date = State()
