"""Start-up fails fast and clearly on a bad setting; the command line works from a fresh checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT, Settings, SettingsError, load_settings


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.isupper() or key in {"PATH", "HOME", "LANG"}}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=environment,
        cwd=cwd or PROJECT_ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("BOT_TOKEN", "not-a-token", "BOT_TOKEN: must look like 123456:ABC-DEF"),
        ("VERIFY_MAX_ATTEMPTS", "three", "VERIFY_MAX_ATTEMPTS: Input should be a valid integer"),
        ("VERIFY_LOCK_MINUTES", "0", "VERIFY_LOCK_MINUTES: Input should be greater than or equal to 1"),
        ("AGENT_IDS", "12,abc", "AGENT_IDS: must be comma-separated Telegram user ids"),
        ("DEFAULT_LOCALE", "fr", "DEFAULT_LOCALE: must be one of en, zh_CN, ru"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: must be a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"),
        ("TELEGRAM_API_URL", "ftp://x", "TELEGRAM_API_URL: must be an http(s) URL"),
        ("POLICY_FILE", "/nonexistent/policy.toml", "POLICY_FILE: no such file"),
        ("AGENT_CHAT_ID", "-100abc", "AGENT_CHAT_ID: Input should be a valid integer"),
        ("PRIVACY_KEY", "short", "PRIVACY_KEY: must be at least 32 characters"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    assert str(raised.value).startswith(reason)
    assert "\n" not in str(raised.value)


def test_settings_have_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_IDS", "1001, 1002")
    settings = load_settings(_env_file=None)
    assert settings.verify_max_attempts == 3
    assert settings.verify_lock_minutes == 30
    assert settings.session_idle_minutes == 30
    assert settings.agent_ids == frozenset({1001, 1002})
    assert settings.token is None
    assert settings.telegram_api_url == "https://api.telegram.org"


def test_the_privacy_key_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "privacy.key"
    first = load_settings(_env_file=None, privacy_key_file=path).hash_key()
    again = load_settings(_env_file=None, privacy_key_file=path).hash_key()
    assert first == again and len(first) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["privacy.key"], "no draft is left behind"
    assert load_settings(_env_file=None, privacy_key_file=tmp_path / "other.key").hash_key() != first
    given = "k" * 40
    assert load_settings(_env_file=None, privacy_key=given, privacy_key_file=tmp_path / "unused.key").hash_key() == given.encode()
    assert not (tmp_path / "unused.key").exists()


def test_a_damaged_privacy_key_file_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "privacy.key"
    path.write_text("too short\n")
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "PRIVACY_KEY_FILE": str(path)}
    result = run_cli("sandbox", env=env, cwd=tmp_path, stdin="/quit\n")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: PRIVACY_KEY_FILE: {path} holds fewer than 32 characters"]


def test_every_setting_is_documented_in_env_example() -> None:
    documented = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"\n{name.upper()}=" in documented, name


def test_cli_exits_2_with_one_line_on_a_bad_setting(tmp_path: Path) -> None:
    result = run_cli("run", env={"VERIFY_MAX_ATTEMPTS": "many"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: VERIFY_MAX_ATTEMPTS: Input should be a valid integer, unable to parse string as an integer"]


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
def test_run_without_a_token_points_to_the_sandbox(tmp_path: Path) -> None:
    result = run_cli("run", env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "BOT_TOKEN" in result.stderr and "sandbox" in result.stderr


def test_demo_data_and_import_from_the_command_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    first = run_cli("demo-data", env=env, cwd=tmp_path)
    again = run_cli("demo-data", env=env, cwd=tmp_path)
    assert first.returncode == 0 and "5 added" in first.stdout
    assert again.returncode == 0 and "0 added" in again.stdout

    csv_file = tmp_path / "accounts.csv"
    csv_file.write_text(
        "account_id,full_name,phone,birth_date,card_last4,currency,statement_balance,overdue_amount,"
        "minimum_due,days_past_due,late_fee,daily_interest_rate,locale,timezone\n"
        "A-1,Ann Lee,+1 (415) 555-0199,1980-01-02,1111,USD,1000.00,500.00,50.00,40,35.00,0.0005,en,America/New_York\n"
        "A-2,Bob,not a phone,1980-01-02,2222,USD,1000.00,500.00,50.00,40,35.00,0.0005,en,America/New_York\n",
        encoding="utf-8",
    )
    imported = run_cli("import-accounts", str(csv_file), env=env, cwd=tmp_path)
    assert imported.returncode == 1
    assert "line 3, column phone" in imported.stdout
    assert "Traceback" not in imported.stderr


@pytest.mark.slow  # a whole process or a crowd: `make test-slow`
def test_sandbox_runs_offline_with_demo_data(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}"}
    result = run_cli("sandbox", env=env, cwd=tmp_path, stdin="/start\n1\n1985-03-07\n1\n2\n4\n1\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert "Share my phone number (shares phone)" in result.stdout
    assert "you are verified" in result.stdout
    assert "[1] 💳 Balance" in result.stdout
    assert "Overdue amount: CN¥8,600.00" in result.stdout
    assert "Compared side by side" in result.stdout
    assert "Done: your arrangement is recorded." in result.stdout


def test_calc_prints_the_schedule_and_rejects_bad_input_without_a_traceback(tmp_path: Path) -> None:
    table = run_cli("calc", "--amount", "10000", "--currency", "CNY", "--months", "12", "--method", "flat", "--rate", "0.006", cwd=tmp_path)
    bad = run_cli("calc", "--amount", "12000", "--currency", "ABC", "--months", "12", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "893.33" in table.stdout and "720.00" in table.stdout and "13.03 %" in table.stdout
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
