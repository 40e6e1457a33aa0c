"""Typed settings read from the environment or a `.env` file, once, at start-up."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing import Annotated, Literal

from bot.languages import SUPPORTED_LOCALES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICY_FILE = Path(__file__).resolve().parent / "data" / "policy.toml"
TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
MIN_PRIVACY_KEY = 32


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_timeout: float = Field(default=30.0, gt=0, le=600)
    telegram_attempts: int = Field(default=5, ge=1, le=20)
    outbox_grace_seconds: float = Field(default=120.0, ge=0, le=86400)
    outbox_every_seconds: float = Field(default=5.0, gt=0, le=3600)
    database_url: str = "sqlite+aiosqlite:///./data/bot.sqlite3"  # ./data of the working directory
    default_locale: str = "en"
    agent_chat_id: int | None = None
    agent_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    supervisor_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    desk_watch_seconds: float = Field(default=60.0, gt=0, le=3600)
    policy_file: Path = DEFAULT_POLICY_FILE
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    verify_max_attempts: int = Field(default=3, ge=1, le=100)
    verify_lock_minutes: int = Field(default=30, ge=1, le=10080)
    session_idle_minutes: int = Field(default=30, ge=1, le=10080)
    redis_url: str | None = None
    max_concurrent_updates: int = Field(default=32, ge=1, le=1000)
    flood_rate: float = Field(default=1.0, gt=0, le=1000)
    flood_burst: int = Field(default=15, ge=1, le=10000)
    outbound_bot_per_second: float = Field(default=30.0, gt=0, le=1_000_000)
    outbound_bot_burst: int = Field(default=1, ge=1, le=100_000)
    outbound_chat_per_second: float = Field(default=1.0, gt=0, le=1_000_000)
    outbound_chat_burst: int = Field(default=3, ge=1, le=100_000)
    outbound_group_per_minute: float = Field(default=20.0, gt=0, le=60_000_000)
    outbound_group_burst: int = Field(default=3, ge=1, le=100_000)
    payment_url_template: str = "https://pay.example-bank.com/card?account={account_id}&amount={amount}"
    privacy_key: SecretStr | None = None
    privacy_key_file: Path = Path("data") / "privacy.key"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    webhook_path: str = "/telegram/webhook"
    webhook_max_connections: int = Field(default=40, ge=1, le=100)

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token_shape(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not TOKEN_SHAPE.match(str(value)):
            raise ValueError("must look like 123456:ABC-DEF (the token BotFather gives)")
        return value

    @field_validator("privacy_key", mode="before")
    @classmethod
    def _privacy_key(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if len(str(value)) < MIN_PRIVACY_KEY:
            raise ValueError(f"must be at least {MIN_PRIVACY_KEY} characters, e.g. the output of openssl rand -hex 32")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/")

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_url(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+\S*$", str(value)):
            raise ValueError("must be the public https:// URL Telegram calls, e.g. https://bot.example-bank.com/telegram/webhook")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(value)):
            raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule), e.g. openssl rand -hex 32")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path(cls, value: str) -> str:
        if not re.fullmatch(r"/\S*", value):
            raise ValueError("must be a path starting with /, e.g. /telegram/webhook")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not (value.startswith("sqlite+aiosqlite://") or value.startswith("postgresql+asyncpg://")):
            raise ValueError("must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL")
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not re.match(r"^rediss?://", str(value)):
            raise ValueError("must be a redis:// URL such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("payment_url_template")
    @classmethod
    def _payment_url(cls, value: str) -> str:
        if not re.match(r"^https://\S+$", value):
            raise ValueError("must be an https:// URL")
        try:
            value.format(account_id="A", amount="1")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may use only the placeholders {account_id} and {amount}") from None
        if "{account_id}" not in value or "{amount}" not in value:
            raise ValueError("must contain {account_id} and {amount}")
        return value

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @field_validator("agent_ids", "supervisor_ids", mode="before")
    @classmethod
    def _agent_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if not all(re.fullmatch(r"-?\d+", part) for part in parts):
                raise ValueError("must be comma-separated Telegram user ids, e.g. 1001,1002")
            return frozenset(int(part) for part in parts)
        return value

    @field_validator("policy_file", mode="before")
    @classmethod
    def _default_policy(cls, value: object) -> object:
        return DEFAULT_POLICY_FILE if value in (None, "") else value

    @field_validator("policy_file")
    @classmethod
    def _policy_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value

    @property
    def token(self) -> str | None:
        return self.bot_token.get_secret_value() if self.bot_token else None

    def hash_key(self) -> bytes:
        """The key of the keyed hashes of phones: PRIVACY_KEY, else the key file, made at first start."""
        if self.privacy_key is not None:
            return self.privacy_key.get_secret_value().encode()
        return _key_from_file(self.privacy_key_file)


def _key_from_file(path: Path) -> bytes:
    """The key kept in `path`, written there with a new random key when there is none yet.

    The new key is written whole to a file of its own and then linked into place, so two processes
    starting at once end up with the same key and neither reads a half-written one.
    """
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".{path.name}.{os.getpid()}")
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(MIN_PRIVACY_KEY) + "\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        except OSError as error:
            raise SettingsError(f"PRIVACY_KEY_FILE: cannot create {path}: {error.strerror}") from None
    try:
        key = path.read_text().strip()
    except OSError as error:
        raise SettingsError(f"PRIVACY_KEY_FILE: cannot read {path}: {error.strerror}") from None
    if len(key) < MIN_PRIVACY_KEY:
        raise SettingsError(f"PRIVACY_KEY_FILE: {path} holds fewer than {MIN_PRIVACY_KEY} characters")
    return key.encode()


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning the first validation problem into one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{field.upper()}: {reason}") from None
