"""The RL prompt stream: epochs over the stage's prompt records, in a seeded order, with the Math
RL epoch pass-rate filter deciding each epoch's pool.

Why its own module: resume must regenerate exactly what an uninterrupted run would have, so the
data position is plain, checkpointable state — (epoch, index into that epoch's order) plus the
pass-rate filter's state. An epoch's pool and order are pure functions of (seed, epoch, filter
status), so nothing else needs saving: a resumed run recomputes the same order and continues at
the same index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cascade.config.schema.rl import FilterConfig
from cascade.data.records import RLRecord, read_rl_records
from cascade.rl import PassRateFilter
from cascade.rl._rng import stable_seed

log = logging.getLogger(__name__)


def load_prompts(files: Sequence[str | Path]) -> list[RLRecord]:
    """Every RL record of the stage's ``data.train_files`` (validated per domain), in file order."""
    if not files:
        raise ValueError("data.train_files is empty: an RL stage needs prompt files (parquet, RLRecord schema)")
    records: list[RLRecord] = []
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"RL prompt file {f} does not exist (build it with data_prep.rl_prompts)")
        records.extend(read_rl_records(f))
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("RL prompt ids must be unique across data.train_files (the pass-rate filter keys on them)")
    return records


class PromptStream:
    """Endless stream of prompt records, epoch after epoch.

    ``take(n)`` returns the next ``n`` records (crossing epoch boundaries). At each boundary the
    pass-rate filter (when configured) closes the epoch and the next epoch's pool is the records it
    admits; an empty pool falls back to every record (never a dead stream).
    """

    def __init__(self, records: Sequence[RLRecord], *, seed: int, shuffle: bool = True,
                 filters: FilterConfig | None = None,
                 keep: Callable[[RLRecord], bool] | None = None) -> None:
        self.records = [r for r in records if keep is None or keep(r)]
        dropped = len(records) - len(self.records)
        if dropped:
            log.warning("RL data: %d of %d prompts skipped (longer than rollout.max_prompt_length)",
                        dropped, len(records))
        if not self.records:
            raise ValueError("no RL prompt left to train on (all longer than rollout.max_prompt_length?)")
        self.seed, self.shuffle = seed, shuffle
        rate_cfg = filters.epoch_pass_rate if filters is not None else None
        self.pass_rate = PassRateFilter(rate_cfg, seed=seed) if rate_cfg is not None else None
        self.epoch, self.index = 0, 0
        self.epoch_stats: dict[str, float] = {}  # the last epoch boundary's filter stats (logged once)
        self._order = self._epoch_order()

    # ---- order ------------------------------------------------------------------------------
    def _pool(self) -> list[int]:
        if self.pass_rate is None:
            return list(range(len(self.records)))
        pool = [i for i, r in enumerate(self.records) if self.pass_rate.admits(r.id, self.epoch)]
        if not pool:
            log.warning("pass-rate filter admitted no prompt for epoch %d: using every prompt", self.epoch)
            return list(range(len(self.records)))
        return pool

    def _epoch_order(self) -> list[int]:
        pool = self._pool()
        if not self.shuffle:
            return pool
        gen = torch.Generator().manual_seed(stable_seed(self.seed, "rl_data_order", self.epoch))
        return [pool[i] for i in torch.randperm(len(pool), generator=gen).tolist()]

    def _next_epoch(self) -> None:
        if self.pass_rate is not None:
            self.pass_rate.end_epoch([r.id for r in self.records])
            self.epoch_stats = dict(self.pass_rate.last_stats)
            self.epoch = self.pass_rate.epoch
        else:
            self.epoch += 1
        self.index = 0
        self._order = self._epoch_order()
        log.info("RL data: epoch %d, %d prompts in the pool", self.epoch, len(self._order))

    # ---- consumption ------------------------------------------------------------------------
    def take(self, n: int) -> list[RLRecord]:
        out: list[RLRecord] = []
        while len(out) < n:
            if self.index >= len(self._order):
                self._next_epoch()
            grab = self._order[self.index : self.index + (n - len(out))]
            out.extend(self.records[i] for i in grab)
            self.index += len(grab)
        return out

    def record_rewards(self, problem_ids: Sequence[str], rewards: Sequence[float]) -> None:
        """Feed the pass-rate filter every generated rollout's reward (dropped groups included)."""
        if self.pass_rate is not None and problem_ids:
            self.pass_rate.record(problem_ids, torch.tensor(list(rewards), dtype=torch.float64))

    def pop_epoch_stats(self) -> dict[str, float]:
        stats, self.epoch_stats = self.epoch_stats, {}
        return stats

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "index": self.index,
                "pass_rate": self.pass_rate.state_dict() if self.pass_rate is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state.get("pass_rate") is None) != (self.pass_rate is None):
            raise ValueError("checkpoint and config disagree on filters.epoch_pass_rate; cannot resume")
        if self.pass_rate is not None:
            self.pass_rate.load_state_dict(state["pass_rate"])
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._epoch_order()
        if self.index > len(self._order):
            raise ValueError(f"checkpoint data index {self.index} is past epoch {self.epoch}'s "
                             f"{len(self._order)} prompts: were data.train_files changed?")
