"""Time the sandbox's start-up: `python -m bot sandbox` from launch to its first prompt, and to its first answer.

    python benchmarks/sandbox_startup.py [--repeat 3]

Each run launches the sandbox in a working directory of its own, waits for the first "> ", types
/start and waits for the bot's answer, then /quit. "Fresh" runs start with no database (the
sandbox migrates one and loads the demo accounts), "existing" runs with the database a fresh run
left. The FAQ cache is the user's own (warm after the first start ever); `--cold-cache` gives the
runs an empty one, as after the knowledge base changed. The CPU time the process had used when its
prompt appeared (from /proc, on Linux) is printed too: it depends less on what else the machine is
doing than the wall-clock time. The target is the first prompt within 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.startup import cpu_seconds  # noqa: E402

TARGET_SECONDS = 3.0
TIMEOUT = 180.0
PROMPT = b"> "


class Run(NamedTuple):
    prompt: float
    """Seconds from launch to the first prompt."""
    answer: float
    """Seconds from launch to the prompt after the bot's answer to /start (typed at the first prompt)."""
    prompt_cpu: float | None
    """CPU seconds the process had used when its first prompt appeared."""


async def read_until_prompt(stream: asyncio.StreamReader, seen: bytearray) -> None:
    """Read until the output so far ends with a prompt."""
    while not seen.endswith(PROMPT):
        chunk = await stream.read(4096)
        if not chunk:
            raise RuntimeError(f"the sandbox ended before its prompt:\n{seen.decode(errors='replace')[-2000:]}")
        seen += chunk


async def launch(workdir: Path, cache: Path | None) -> Run:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(workdir)),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'sandbox.sqlite3'}",
    }
    if cache is not None:
        env["FAQ_CACHE_DIR"] = str(cache)
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox",
        cwd=workdir, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    seen = bytearray()
    try:
        await asyncio.wait_for(read_until_prompt(process.stdout, seen), TIMEOUT)
        prompt, prompt_cpu = time.perf_counter() - began, cpu_seconds(process.pid)
        process.stdin.write(b"/start\n")
        await process.stdin.drain()
        del seen[:]
        await asyncio.wait_for(read_until_prompt(process.stdout, seen), TIMEOUT)
        answer = time.perf_counter() - began
        if b"Hello" not in seen:
            raise RuntimeError(f"no greeting after /start:\n{seen.decode(errors='replace')}")
        process.stdin.write(b"/quit\n")
        await process.stdin.drain()
        _, errors = await asyncio.wait_for(process.communicate(), TIMEOUT)
        if process.returncode != 0:
            raise RuntimeError(f"the sandbox exited with {process.returncode}:\n{errors.decode()[-2000:]}")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Run(prompt, answer, prompt_cpu)


def row(name: str, runs: list[Run]) -> str:
    cpu = [run.prompt_cpu for run in runs]
    cpu_cell = f"{statistics.median(c for c in cpu if c is not None):.2f} s" if all(c is not None for c in cpu) else ""
    return (
        f"{name:<24} {len(runs):>4} {statistics.median(r.prompt for r in runs):>9.2f} s {max(r.prompt for r in runs):>7.2f} s"
        f" {cpu_cell:>10} {statistics.median(r.answer for r in runs):>10.2f} s"
    )


async def measure(repeat: int, cold_cache: bool) -> int:
    fresh: list[Run] = []
    existing: list[Run] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="sandbox-startup-") as scratch:
            workdir = Path(scratch)
            cache = workdir / "faq-cache" if cold_cache else None
            fresh.append(await launch(workdir, cache))
            if cache is not None:
                shutil.rmtree(cache)  # cold again: the cache the fresh run filled is emptied
            existing.append(await launch(workdir, cache))
    print(f"{'python -m bot sandbox':<24} {'runs':>4} {'to prompt':>11} {'max':>9} {'CPU then':>10} {'to answer':>12}")
    print(row("fresh database", fresh))
    print(row("existing database", existing))
    worst = max(run.prompt for run in fresh + existing)
    print(f"first prompt within {worst:.2f} s at worst (target: {TARGET_SECONDS:.0f} s): {'ok' if worst <= TARGET_SECONDS else 'above the target'}")
    return 0 if worst <= TARGET_SECONDS else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument("--cold-cache", action="store_true", help="an empty FAQ cache for every run")
    arguments = parser.parse_args()
    return asyncio.run(measure(max(arguments.repeat, 1), arguments.cold_cache))


if __name__ == "__main__":
    sys.exit(main())
