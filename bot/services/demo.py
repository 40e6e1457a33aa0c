"""Demo accounts for trying the bot without a bank's file.

Each entry has the same columns, as text, as a row of the import CSV, and is loaded through the
same validation and upsert as an import, so loading twice changes nothing. The CNY, RUB and USD
cardholders are in CN, RU and US, one for each of the policy's jurisdiction packs; the JPY and EUR
ones have none, so the policy's default for their currency applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.accounts import AccountRecord, validate_account_row, write_accounts

DEMO_ACCOUNTS: tuple[Mapping[str, str], ...] = (
    {
        "account_id": "DEMO-CN-0001",
        "full_name": "张伟",
        "phone": "+8613800138000",
        "birth_date": "1985-03-07",
        "card_last4": "4321",
        "currency": "CNY",
        "statement_balance": "25800.00",
        "overdue_amount": "8600.00",
        "minimum_due": "2580.00",
        "days_past_due": "45",
        "late_fee": "129.00",
        "daily_interest_rate": "0.0005",
        "locale": "zh_CN",
        "timezone": "Asia/Shanghai",
        "jurisdiction": "CN",
    },
    {
        "account_id": "DEMO-RU-0001",
        "full_name": "Иван Петров",
        "phone": "+79123456789",
        "birth_date": "1979-11-23",
        "card_last4": "5566",
        "currency": "RUB",
        "statement_balance": "154300.00",
        "overdue_amount": "42000.00",
        "minimum_due": "7715.00",
        "days_past_due": "20",
        "late_fee": "750.00",
        "daily_interest_rate": "0.0006",
        "locale": "ru",
        "timezone": "Europe/Moscow",
        "jurisdiction": "RU",
    },
    {
        "account_id": "DEMO-US-0001",
        "full_name": "John Smith",
        "phone": "+14155550132",
        "birth_date": "1990-06-15",
        "card_last4": "7788",
        "currency": "USD",
        "statement_balance": "6420.55",
        "overdue_amount": "1850.00",
        "minimum_due": "245.00",
        "days_past_due": "75",
        "late_fee": "40.00",
        "daily_interest_rate": "0.00068",
        "locale": "en",
        "timezone": "America/Los_Angeles",
        "jurisdiction": "US",
    },
    {
        "account_id": "DEMO-JP-0001",
        "full_name": "Yuki Tanaka",
        "phone": "+819012345678",
        "birth_date": "1972-01-30",
        "card_last4": "9012",
        "currency": "JPY",
        "statement_balance": "380000",
        "overdue_amount": "95000",
        "minimum_due": "19000",
        "days_past_due": "10",
        "late_fee": "1000",
        "daily_interest_rate": "0.0004",
        "locale": "en",
        "timezone": "Asia/Tokyo",
        "jurisdiction": "",
    },
    {
        "account_id": "DEMO-EU-0001",
        "full_name": "Anna Schmidt",
        "phone": "+4915112345678",
        "birth_date": "1988-09-02",
        "card_last4": "3456",
        "currency": "EUR",
        "statement_balance": "12750.00",
        "overdue_amount": "4980.40",
        "minimum_due": "637.50",
        "days_past_due": "100",
        "late_fee": "60.00",
        "daily_interest_rate": "0.00045",
        "locale": "en",
        "timezone": "Europe/Berlin",
        "jurisdiction": "",
    },
)
"""The demo cardholders; show ``phone`` and ``birth_date`` to whoever tries the bot."""


def demo_records(*, now: datetime) -> list[AccountRecord]:
    """`DEMO_ACCOUNTS` validated exactly as an imported row would be."""
    today = now.astimezone(timezone.utc).date()
    records = []
    for values in DEMO_ACCOUNTS:
        record, problems = validate_account_row(values, today=today)
        if record is None:
            details = "; ".join(f"{column}: {reason}" for column, reason in problems)
            raise ValueError(f"demo account {values['account_id']} is invalid: {details}")
        records.append(record)
    return records


async def load_demo_data(session_factory: async_sessionmaker[AsyncSession], *, now: datetime) -> int:
    """Insert or refresh the demo accounts; returns how many were not there before."""
    records = demo_records(now=now)
    async with session_factory() as session, session.begin():
        counts = await write_accounts(session, records, now=now)
    return counts.inserted
