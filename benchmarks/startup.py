"""Time start-up: `python -m bot run` from launch to its first getUpdates, against a bare aiogram bot.

    python benchmarks/startup.py [--repeat 5]

Both run against the fake Bot API server (bot.telegram_fake). The bare bot is an aiogram echo bot
with nothing else to do; the difference is what the bot's own start-up costs. The target is at most
1 s more than the bare bot with a warm cache (the FAQ's fitted models on disk). One cold run, with
empty cache directories (ours and jieba's), is reported separately: that is the first start after
the knowledge base changed. The two bots take turns, so a busy machine slows both alike; the CPU
time each process used until its first getUpdates (from /proc, on Linux) is printed too, as it
depends less on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.db.schema import migrate  # noqa: E402
from bot.telegram_fake import FakeTelegram  # noqa: E402

BOT_TOKEN = "123456:TEST-token_for-fake"
TARGET_SECONDS = 1.0
LAUNCH_TIMEOUT = 180.0

BARE_BOT = '''
import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

dispatcher = Dispatcher()


@dispatcher.message()
async def echo(message: Message) -> None:
    await message.send_copy(message.chat.id)


async def main() -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    await dispatcher.start_polling(Bot(os.environ["BOT_TOKEN"], session=session))


asyncio.run(main())
'''


class Run(NamedTuple):
    """One launch: seconds to the first getUpdates, and the CPU seconds the process used until then."""

    wall: float
    cpu: float | None


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time process `pid` has used so far, or None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def first_poll(command: list[str], env: dict[str, str], workdir: Path) -> Run:
    """Launch `command` against a fresh fake server and time it until its first getUpdates arrives."""
    server = FakeTelegram()
    await server.start()
    errors = workdir / "stderr.txt"
    try:
        with errors.open("wb") as stderr:
            began = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                *command,
                env={**env, "TELEGRAM_API_URL": server.base_url or ""},
                cwd=workdir,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
            try:
                while not server.polling:
                    if process.returncode is not None:
                        raise RuntimeError(f"{command[1:]} exited early:\n{errors.read_text()[-2000:]}")
                    if time.perf_counter() - began > LAUNCH_TIMEOUT:
                        raise RuntimeError(f"{command[1:]} did not poll within {LAUNCH_TIMEOUT:.0f} s")
                    try:
                        await asyncio.wait_for(server.change_event().wait(), 0.05)
                    except TimeoutError:
                        pass
                run = Run(time.perf_counter() - began, cpu_seconds(process.pid))
            finally:
                await stop(process)
    finally:
        await server.stop()
    return run


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


def environment(workdir: Path, cache: Path, temporary: Path) -> dict[str, str]:
    """A clean environment: no .env, and a database and caches of the benchmark's own."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(workdir)),
        "PYTHONPATH": str(ROOT),
        "BOT_TOKEN": BOT_TOKEN,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bot.sqlite3'}",
        "FAQ_CACHE_DIR": str(cache),
        "TMPDIR": str(temporary),
        "LOG_LEVEL": "WARNING",
    }


def cells(values: list[float | None], baseline: list[float | None] | None = None) -> list[str]:
    """Median and least of `values` (less those of `baseline`, if given); blank without figures."""
    if any(value is None for value in values) or (baseline and any(value is None for value in baseline)):
        return ["", ""]
    if baseline is not None:
        return [
            f"{statistics.median(values) - statistics.median(baseline):+.2f} s",
            f"{min(values) - min(baseline):+.2f} s",
        ]
    return [f"{statistics.median(values):.2f} s", f"{min(values):.2f} s" if len(values) > 1 else ""]


def row(name: str, runs: list[Run], baseline: list[Run] | None = None) -> str:
    wall = cells([run.wall for run in runs], baseline and [run.wall for run in baseline])
    cpu = cells([run.cpu for run in runs], baseline and [run.cpu for run in baseline])
    count = "" if baseline else str(len(runs))
    return f"{name:<31} {count:>4} {wall[0]:>8} {wall[1]:>8} {cpu[0]:>11} {cpu[1]:>8}"


async def measure(repeat: int) -> int:
    with tempfile.TemporaryDirectory(prefix="startup-") as scratch:
        workdir = Path(scratch)
        cache, temporary = workdir / "cache", workdir / "tmp"
        temporary.mkdir()
        bare_script = workdir / "bare_bot.py"
        bare_script.write_text(BARE_BOT, encoding="utf-8")
        bot_command = [sys.executable, "-m", "bot", "run"]
        bare_command = [sys.executable, str(bare_script)]
        env = environment(workdir, cache, temporary)
        await migrate(env["DATABASE_URL"])  # a deployment migrates once, before it starts

        cold = await first_poll(bot_command, env, workdir)
        bare: list[Run] = []
        warm: list[Run] = []
        for _ in range(repeat):
            bare.append(await first_poll(bare_command, env, workdir))
            warm.append(await first_poll(bot_command, env, workdir))

    print(f"{'launch to first getUpdates':<31} {'runs':>4} {'median':>8} {'min':>8} {'CPU median':>11} {'CPU min':>8}")
    print(row("bare aiogram bot", bare))
    print(row("python -m bot run, warm cache", warm))
    print(row("difference", warm, bare))
    print(row("python -m bot run, cold cache", [cold]))
    difference = statistics.median(run.wall for run in warm) - statistics.median(run.wall for run in bare)
    verdict = "ok" if difference <= TARGET_SECONDS else "above the target"
    print(
        f"warm start-up costs {difference:+.2f} s over the bare bot "
        f"(target: at most {TARGET_SECONDS:.0f} s): {verdict}"
    )
    return 0 if difference <= TARGET_SECONDS else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm runs of each bot (default 5)")
    arguments = parser.parse_args()
    return asyncio.run(measure(max(arguments.repeat, 1)))


if __name__ == "__main__":
    sys.exit(main())
