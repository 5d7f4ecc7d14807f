"""Multi-domain scoring: each row goes to the scorer of its own record's domain.

Cascade-2's multi-domain RL (and MOPD-style blends) mix STEM MCQA, tool calling and structured
output prompts in one batch. The stage lists its domains (``reward.domains``); every listed
domain gets its own scorer, built once, and a batch is split by ``row["domain"]``, scored per
domain (one call each, so process pools and served judges still see batches), and put back in
row order. A row whose domain the stage does not list earns 0 with ``info.error`` (the contract
of every scorer); the trainer also refuses such prompts at stage start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cascade.config.schema.rl import RewardDomain
from cascade.rewards.result import DomainScorer, RewardResult, Row, error_result


class RoutedScorer:
    """One scorer per domain behind the batch-scorer interface."""

    def __init__(self, scorers: Mapping[RewardDomain, DomainScorer]) -> None:
        if not scorers:
            raise ValueError("RoutedScorer needs at least one domain scorer")
        self.scorers = dict(scorers)

    def _domain(self, row: Row) -> RewardDomain | None:
        try:
            domain = RewardDomain(row.get("domain"))
        except ValueError:
            return None
        return domain if domain in self.scorers else None

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        by_domain: dict[RewardDomain, list[int]] = {}
        for i, row in enumerate(rows):
            domain = self._domain(row)
            if domain is None:
                known = ", ".join(d.value for d in self.scorers)
                results[i] = error_result(f"row domain {row.get('domain')!r} is not scored by this stage "
                                          f"(reward.domains: {known})")
            else:
                by_domain.setdefault(domain, []).append(i)
        for domain, index in by_domain.items():
            scored = self.scorers[domain].score([rows[i] for i in index])
            if len(scored) != len(index):
                raise RuntimeError(f"{domain.value} scorer returned {len(scored)} results for {len(index)} rows")
            for i, result in zip(index, scored):
                results[i] = result
        return [r for r in results if r is not None]

    def close(self) -> None:
        for scorer in self.scorers.values():
            close = getattr(scorer, "close", None)
            if close is not None:
                close()
