"""Compiling the gettext catalogs (babel only, so the build step can use it before anything is installed)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "messages"


def compile_catalogs(source: Path, target: Path | None = None) -> list[Path]:
    """Compile each `source/<lang>/LC_MESSAGES/messages.po` whose `.mo` under `target` is missing or older.

    `target` defaults to `source` (a checkout compiles in place at start-up); the wheel's build step
    compiles into the package instead. Returns the `.mo` files, so no compiled file lives in git.
    """
    target = source if target is None else target
    compiled = []
    for po_path in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        compiled.append(mo_path)
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = mo_path.with_suffix(".mo.tmp")
        with temporary.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        temporary.replace(mo_path)
    return compiled
