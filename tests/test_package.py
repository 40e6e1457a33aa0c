"""The wheel installs and runs outside the source tree: catalogs compiled at build time, data files shipped.

Slow (a build, an install and two bot processes, one of them fitting the FAQ): behind the `package`
marker, which `make test` leaves out and `.ci/run` runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.package

NOT_BUILT_ANYWHERE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo", "*.egg-info")
NOT_BUILT_AT_THE_TOP = {".git", ".venv", "build", "dist", "data", ".pytest_cache", ".hypothesis", ".env"}


def not_source(directory: str, names: list[str]) -> set[str]:
    """What a build of the checkout does not read: the checkout's own state, not its files."""
    ignored = set(NOT_BUILT_ANYWHERE(directory, names))
    if Path(directory) == PROJECT_ROOT:
        ignored |= NOT_BUILT_AT_THE_TOP & set(names)
    return ignored


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout built into a wheel and installed into a directory of its own."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=not_source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(work / "dist")],
                   check=True, capture_output=True, timeout=120)
    (wheel,) = (work / "dist").glob("repay_bot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = {
        path.relative_to(source).as_posix()
        for package in ("bot", "handlers") for path in (source / package).rglob("*") if path.is_file()
    }
    assert "bot/data/policy.toml" in shipped and "bot/data/faq/ru.toml" in shipped
    assert shipped - names == set(), "every file of the packages is in the wheel"
    catalogs = {name for name in names if name.startswith("bot/locales/")}
    assert catalogs == {f"bot/locales/{locale}/LC_MESSAGES/messages.mo" for locale in ("en", "ru", "zh_CN")}
    target = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=120)
    return target


def run_installed(site: Path, cwd: Path, *arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python -P ARGUMENTS` with the installed package first on the path, from a directory with no checkout."""
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(site),
        "DATABASE_URL": f"sqlite+aiosqlite:///{cwd / 'bot.sqlite3'}",
        "PRIVACY_KEY_FILE": str(cwd / "privacy.key"),
        "FAQ_CACHE_DIR": str(site.parent / "faq-cache"),
    }
    return subprocess.run(
        [sys.executable, "-P", *arguments], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=180
    )


def test_the_installed_package_is_the_one_that_runs(installed: Path, tmp_path: Path) -> None:
    probe = "import bot, handlers, bot.i18n as i; print(bot.__file__); print(handlers.__file__); print(i.catalogs_dir())"
    result = run_installed(installed, tmp_path, "-c", probe)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        assert Path(line).is_relative_to(installed), line
    assert result.stdout.splitlines()[2] == str(installed / "bot" / "locales")
    help_text = run_installed(installed, tmp_path, "-m", "bot", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "sandbox" in help_text.stdout


@pytest.mark.parametrize(
    ("language", "script", "expected"),
    [
        ("ru", "/start\n/contact 2\n23.11.1979\nкак оплатить?\n/quit\n",
         ["Отправить мой номер телефона", "личность подтверждена", "официальную страницу оплаты"]),
        ("zh", "/start\n/contact 1\n1985-03-07\n怎么还款？\n/quit\n",
         ["发送我的手机号码", "身份已确认", "还款"]),
    ],
)
def test_the_installed_sandbox_speaks_the_cardholders_language(
    installed: Path, tmp_path: Path, language: str, script: str, expected: list[str]
) -> None:
    result = run_installed(installed, tmp_path, "-m", "bot", "sandbox", "--language", language, stdin=script)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout, (text, result.stdout)
    assert (tmp_path / "bot.sqlite3").is_file() and (tmp_path / "privacy.key").is_file()
    assert not (installed / "data").exists(), "nothing is written into the installed package"
