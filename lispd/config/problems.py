"""How a bad configuration is reported: every problem at once, each on its line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file.

    `path` names the key the way an operator would point at it
    (`xtr.database-mapping[0].eid-prefix`), empty for the file as a whole;
    `line` is 1-based, None where it could not be found.
    """

    path: str
    message: str
    line: int | None = None

    def format(self, source: str) -> str:
        where = source if self.line is None else f"{source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def _in_file_order(problem: Problem) -> tuple[bool, int]:
    return (problem.line is None, problem.line or 0)


class ConfigError(Exception):
    """A configuration failed to load; `problems` lists all that was found."""

    def __init__(self, problems: Iterable[Problem], source: str = "<string>") -> None:
        # File order reads best; problems without a line go last. sorted() is
        # stable, so problems on one line keep the order they were found in.
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=_in_file_order))
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(problem.format(self.source) for problem in self.problems)
