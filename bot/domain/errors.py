"""Domain errors: services raise them, one handler turns them into a translated answer."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the business was not met; `str(error)` is a clear English message for logs and CLIs."""


class InvalidPhone(DomainError):
    pass


class InvalidDate(DomainError):
    pass


class ImportFileError(DomainError):
    """The file as a whole cannot be imported (unreadable, wrong header)."""


class CalculationError(DomainError):
    """A calculator input is unusable (amount, currency, term, rate, date); the message says which and why."""


class ProblemsError(DomainError):
    """A file a bank edits (policy, knowledge base) is invalid; `problems` lists every mistake."""

    what = "file"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"invalid {self.what}: " + "; ".join(problems))
        self.problems = problems
