"""The wheel's build step: the catalogs in locales/ are compiled into the package (bot/locales/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _catalogs_module():
    """bot/catalogs.py on its own: importing the package would need its dependencies, absent at build time."""
    spec = importlib.util.spec_from_file_location("_repay_bot_catalogs", ROOT / "bot" / "catalogs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithCatalogs(build_py):
    """Also compiles locales/*/LC_MESSAGES/messages.po to bot/locales/*/LC_MESSAGES/messages.mo.

    An editable install skips it: a checkout compiles locales/ in place at start-up (bot/i18n.py).
    """

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self._compiled = _catalogs_module().compile_catalogs(ROOT / "locales", Path(self.build_lib) / "bot" / "locales")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *map(str, getattr(self, "_compiled", []))]


setup(cmdclass={"build_py": BuildWithCatalogs})
