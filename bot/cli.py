"""Command line: `python -m bot migrate | run | webhook | sandbox | import-accounts FILE | import-payments FILE | export-case N | faq-review | purge | demo-data | calc`."""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.calc_cli import add_calc_parser, calc_command
from bot.clock import Clock
from bot.db import create_engine, create_session_factory
from bot.db.schema import SchemaError, migrate, require_current_schema
from bot.domain.errors import DomainError
from bot.domain.policy import PolicyError, load_policy
from bot.logs import setup_logging
from bot.settings import Settings, SettingsError, load_settings

log = logging.getLogger("bot")

EXIT_USAGE = 2
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database's schema to this version (back the database up first)")
    commands.add_parser("run", help="run the bot with long polling (needs BOT_TOKEN)")
    commands.add_parser(
        "webhook", help="run the bot behind a webhook, with /healthz and /metrics (needs BOT_TOKEN, WEBHOOK_URL, WEBHOOK_SECRET)"
    )
    sandbox_parser = commands.add_parser("sandbox", help="talk to the bot offline in this terminal, as a demo cardholder")
    sandbox_parser.add_argument("--language", default="en", help="the Telegram language of the sandbox user (en, ru, zh)")
    accounts = commands.add_parser("import-accounts", help="load delinquent accounts from a CSV file")
    accounts.add_argument("file", type=Path)
    payments = commands.add_parser("import-payments", help="apply payments the bank posted, from a CSV file")
    payments.add_argument("file", type=Path)
    export = commands.add_parser("export-case", help="print a case's full transcript")
    export.add_argument("case_id", type=int)
    review = commands.add_parser(
        "faq-review", help="print the questions the knowledge base was not sure about (CSV), with the topic picked next"
    )
    review.add_argument("--since", type=date.fromisoformat, help="only questions from this day on (YYYY-MM-DD)")
    purge = commands.add_parser(
        "purge", help="remove or anonymise the records of closed accounts kept longer than their jurisdiction's retention"
    )
    purge.add_argument("--dry-run", action="store_true", help="print what would be purged and change nothing")
    purge.add_argument("--batch-size", type=_positive, default=None, help="rows changed per transaction (default 5000)")
    commands.add_parser("demo-data", help="load the demo accounts (idempotent)")
    add_calc_parser(commands)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        load_policy(settings.policy_file)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyError as error:
        print(f"error: POLICY_FILE: {'; '.join(error.problems)}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.log_level, settings.log_format)
    try:
        return asyncio.run(COMMANDS[arguments.command](settings, arguments))
    except (DomainError, SettingsError, SchemaError) as error:  # SettingsError: the privacy key file, read when the bot starts
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0


async def migrate_command(settings: Settings, _arguments: argparse.Namespace) -> int:
    print(await migrate(settings.database_url))
    return 0


async def run(settings: Settings, _arguments: argparse.Namespace) -> int:
    from bot.app import create_app

    if settings.token is None:
        print("error: BOT_TOKEN: required by `run`; `python -m bot sandbox` runs offline", file=sys.stderr)
        return EXIT_USAGE
    app = await create_app(settings)
    try:
        await app.start_polling()
    finally:
        await app.close()
    return 0


async def webhook(settings: Settings, _arguments: argparse.Namespace) -> int:
    from bot.webhook import serve

    missing = [name for name, value in (("BOT_TOKEN", settings.token), ("WEBHOOK_URL", settings.webhook_url),
                                        ("WEBHOOK_SECRET", settings.webhook_secret)) if not value]
    if missing:
        print(f"error: {', '.join(missing)}: required by `webhook`", file=sys.stderr)
        return EXIT_USAGE
    return await serve(settings)


async def sandbox(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.sandbox import run_sandbox

    logging.getLogger().setLevel(logging.WARNING)
    return await run_sandbox(settings, arguments.language)


async def with_database(settings: Settings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run one piece of offline work (an import) against the configured database, which must be migrated."""
    engine = create_engine(settings.database_url)
    try:
        await require_current_schema(engine)
        return await work(create_session_factory(engine))
    finally:
        await engine.dispose()


async def import_accounts_command(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.services.accounts import import_accounts

    jurisdictions = tuple(load_policy(settings.policy_file).jurisdictions)
    report = await with_database(
        settings,
        lambda sessions: import_accounts(sessions, arguments.file, now=Clock().now(), jurisdictions=jurisdictions),
    )
    print(report.format())
    return 1 if report.errors else 0


async def import_payments_command(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.services.payments import import_payments

    report = await with_database(settings, lambda sessions: import_payments(sessions, arguments.file, now=Clock().now()))
    print(report.format())
    return 1 if report.errors else 0


async def export_case(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.services.cases import CaseService

    async def transcript(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
        async with sessions() as session:
            cases = CaseService(session, Clock())
            case = await cases.get(arguments.case_id)
            if case is None:
                return []
            lines = [
                f"case #{case.id}: {case.reason}, {case.status}, verified={case.verified}, agent={case.agent_id}, "
                f"opened {case.created_at.isoformat()}, outcome={case.outcome}, rating={case.rating}"
            ]
            for event in await cases.transcript(case.id):
                lines.append(f"{event.at.isoformat()} {event.actor} {event.kind}: {event.text}")
            return lines

    lines = await with_database(settings, transcript)
    if not lines:
        print(f"error: no case #{arguments.case_id}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(lines))
    return 0


async def faq_review(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.services.faq_review import questions_to_review

    since = datetime.combine(arguments.since, time(), tzinfo=timezone.utc) if arguments.since else None

    async def review(sessions: async_sessionmaker[AsyncSession]) -> list:
        async with sessions() as session:
            return await questions_to_review(session, since)

    writer = csv.writer(sys.stdout)
    writer.writerow(["at", "locale", "question", "offered", "chosen"])
    for question in await with_database(settings, review):
        writer.writerow(
            [question.at.isoformat(), question.locale, question.text, " ".join(question.offered), question.chosen or ""]
        )
    return 0


EXIT_BUSY = 1


async def purge_command(settings: Settings, arguments: argparse.Namespace) -> int:
    """Exit 0 when done (or counted, dry), 1 when another purge holds the lease."""
    from bot.services.retention import BATCH_SIZE, Purge, PurgeRefused

    policy = load_policy(settings.policy_file)
    batch_size = arguments.batch_size or BATCH_SIZE
    try:
        report = await with_database(
            settings, lambda sessions: Purge(sessions, policy, Clock(), batch_size).run(dry_run=arguments.dry_run)
        )
    except PurgeRefused as refused:
        print(f"error: {refused}; try again later", file=sys.stderr)
        return EXIT_BUSY
    print(report.format())
    return 0


async def demo_data(settings: Settings, _arguments: argparse.Namespace) -> int:
    from bot.services.demo import load_demo_data

    print(await migrate(settings.database_url))  # a demo: its database is made ready for it
    added = await with_database(settings, lambda sessions: load_demo_data(sessions, now=Clock().now()))
    print(f"demo accounts: {added} added")
    return 0


COMMANDS = {
    "migrate": migrate_command,
    "run": run,
    "webhook": webhook,
    "sandbox": sandbox,
    "import-accounts": import_accounts_command,
    "import-payments": import_payments_command,
    "export-case": export_case,
    "faq-review": faq_review,
    "purge": purge_command,
    "demo-data": demo_data,
    "calc": calc_command,
}
