"""The bank's policy file (TOML): loaded once, validated, each mistake reported with its key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.errors import DomainError


class PolicyError(DomainError):
    """The policy file is invalid; `problems` lists each mistake as `key: reason`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid policy: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class BankContact:
    name: str
    phone: str
    website: str
    hours_start: time
    hours_end: time
    timezone: str


@dataclass(frozen=True)
class Policy:
    version: str
    bank: BankContact


class _Reader:
    """Reads typed values out of the parsed TOML and collects every problem instead of stopping."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is not None:
                    return default
                self.problems.append(f"{key}: missing")
                return None
            node = node[part]
        if not isinstance(node, kind):
            self.problems.append(f"{key}: must be a {kind.__name__}")
            return None
        return node

    def clock_time(self, key: str) -> time | None:
        value = self.get(key, str)
        if value is None:
            return None
        try:
            return time.fromisoformat(value)
        except ValueError:
            self.problems.append(f"{key}: must be a time such as 09:00")
            return None

    def zone(self, key: str) -> str | None:
        value = self.get(key, str)
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.problems.append(f"{key}: unknown time zone {value!r}")
            return None
        return value


def parse_policy(raw: dict[str, Any]) -> Policy:
    reader = _Reader(raw)
    version = reader.get("version", str)
    bank = BankContact(
        name=reader.get("bank.name", str),
        phone=reader.get("bank.phone", str),
        website=reader.get("bank.website", str),
        hours_start=reader.clock_time("bank.hours_start"),
        hours_end=reader.clock_time("bank.hours_end"),
        timezone=reader.zone("bank.timezone"),
    )
    if reader.problems:
        raise PolicyError(reader.problems)
    return Policy(version=version, bank=bank)


def load_policy(path: Path) -> Policy:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError([f"{path}: cannot be read ({error.strerror})"]) from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError([f"{path}: not valid TOML ({error})"]) from None
    return parse_policy(raw)
