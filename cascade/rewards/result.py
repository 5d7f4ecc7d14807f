"""What every reward returns and how a bad row is reported; shared by the registry, the
code-switching wrapper and the domains without any of them importing the registry's loader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Row = Mapping[str, Any]


@dataclass
class RewardResult:
    """One row's score: `reward` is what the RL loss sees, `info` is for logs and debugging."""

    reward: float
    info: dict[str, Any] = field(default_factory=dict)


def error_result(message: str, **info: Any) -> RewardResult:
    """The result for a row that cannot be scored (contract: reward 0 plus `info.error`)."""
    return RewardResult(0.0, {"error": message, **info})


class DomainScorer(Protocol):
    """What every registered domain builds: a batch scorer with an explicit lifetime."""

    def score(self, rows: Sequence[Row]) -> list[RewardResult]: ...

    def close(self) -> None: ...


def require_fields(row: Row, names: Sequence[str]) -> str | None:
    """None if `row` has every field in `names`, else an error message naming what is missing."""
    if not isinstance(row, Mapping):
        return f"row is {type(row).__name__}, not an object"
    missing = [n for n in names if n not in row or row[n] is None]
    return f"missing field(s): {', '.join(missing)}" if missing else None


def require_text_response(row: Row, names: Sequence[str]) -> str | None:
    """`require_fields`, then that `response` is text (a policy's output always is; a row is data)."""
    err = require_fields(row, names)
    if err is None and not isinstance(row["response"], str):
        err = f"response is {type(row['response']).__name__}, not a string"
    return err
