"""Errors a user can cause, each with a source location.

Every problem is reported as ``file:line:column: key: what is wrong``. A :class:`StationError`
carries all problems found in one pass (a whole lot is validated at once), and only
:mod:`station.cli` turns it into an exit code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, and where it is."""

    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.key}: {self.message}"


SAME_SHOWN = 5  # identical problems shown before "… and N more like this"


def cap_identical(problems: Iterable[Problem], shown: int = SAME_SHOWN) -> tuple[Problem, ...]:
    """The problems with each run of identical ones (same file, key and message on other
    lines) cut to ``shown``, then one line saying how many more there are and where."""
    items = list(problems)
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, p in enumerate(items):
        groups.setdefault((p.file, p.key, p.message), []).append(i)
    dropped: set[int] = set()
    summary: dict[int, Problem] = {}  # index of the last one shown -> the summary after it
    for indexes in groups.values():
        if len(indexes) <= shown + 1:
            continue
        rest = indexes[shown:]
        first, last = items[rest[0]], items[rest[-1]]
        where = f" (lines {first.line}-{last.line})" if first.line and last.line else ""
        summary[indexes[shown - 1]] = Problem(
            first.file,
            first.line,
            first.column,
            first.key,
            f"… and {len(rest)} more like this{where}",
        )
        dropped.update(rest)
    if not dropped:
        return tuple(items)
    out: list[Problem] = []
    for i, p in enumerate(items):
        if i not in dropped:
            out.append(p)
            if i in summary:
                out.append(summary[i])
    return tuple(out)


class StationError(Exception):
    """A problem the user can fix (bad input, a missing file, a refused device).

    ``exit_code`` is 2 for bad input and 1 for a failed device, as the command line promises.
    """

    def __init__(self, problems: Problem | Iterable[Problem], *, exit_code: int = 2) -> None:
        self.problems: tuple[Problem, ...] = (
            (problems,) if isinstance(problems, Problem) else cap_identical(problems)
        )
        if not self.problems:
            raise ValueError("StationError needs at least one problem")
        self.exit_code = exit_code
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(
        cls,
        file: str,
        message: str,
        *,
        line: int = 0,
        column: int = 0,
        key: str = "-",
        exit_code: int = 2,
    ) -> StationError:
        """Shorthand for an error with a single problem."""
        return cls(Problem(str(file), line, column, key, message), exit_code=exit_code)


class ProblemList:
    """Collects problems during a validation pass; raise them all at the end."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file: str, line: int, column: int, key: str, message: str) -> None:
        self.items.append(Problem(str(file), line, column, key, message))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self, *, exit_code: int = 2) -> None:
        if self.items:
            raise StationError(self.items, exit_code=exit_code)
