"""Errors a user can act on. The CLI prints them as one clear message, never a traceback."""

from __future__ import annotations


class HamriskError(Exception):
    """Base for every error the CLI reports to a user; ``exit_code`` is what it exits with."""

    exit_code = 2


class UnusableInputError(HamriskError):
    """An input that cannot be read as the contract says (wrong encoding, missing table...).

    Args:
        path: the file or folder at fault.
        problem: what is wrong, in words a clinic's data person reads.
        hint: how to fix it, where that can be guessed.
    """

    def __init__(self, path: object, problem: str, hint: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        message = f"{self.path}: {problem}"
        if hint:
            message += f" (hint: {hint})"
        super().__init__(message)
