"""The exception a user's configuration mistake becomes when it must stop a command."""

from __future__ import annotations

from collections.abc import Sequence

from ig_metrics.config.model import Problem

EXIT_INVALID_INPUT = 2


class ConfigError(Exception):
    """A configuration the command cannot use; `str()` is the whole user message.

    Commands exit with `exit_code` (2: invalid input) after printing it.
    """

    exit_code = EXIT_INVALID_INPUT

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.message = message
        self.problems = list(problems)
        super().__init__(self.user_message())

    def user_message(self) -> str:
        lines = [str(problem) for problem in self.problems]
        return "\n".join([*lines, self.message]) if lines else self.message
