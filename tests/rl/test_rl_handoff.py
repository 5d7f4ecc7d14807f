"""Math RL 24K -> 32K -> 40K is one curriculum (C1 Table 17: steps 0-190-430-500): a sub-stage with
``filters.epoch_pass_rate.carry_over`` continues the prompt stream (epoch, position, pass-rate
filter classes) its init stage handed on, instead of starting a fresh epoch with every problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.config import load_stage_config
from cascade.config.schema.rl import EpochPassRateFilter, FilterConfig, RewardDomain
from cascade.data.records import RLRecord
from cascade.rl.data import PromptStream
from cascade.rl.filters import HANDOFF_FILE, read_handoff, write_handoff

REPO = Path(__file__).resolve().parents[2]


def _records(n: int = 12) -> list[RLRecord]:
    return [RLRecord(id=f"m{i}", domain=RewardDomain.MATH, source="test",
                     prompt=[{"role": "user", "content": f"What is {i} + {i}?"}], ground_truth=str(2 * i))
            for i in range(n)]


def _stream() -> PromptStream:
    filters = FilterConfig(epoch_pass_rate=EpochPassRateFilter(readmit_hard=0.10, readmit_easy=0.01))
    return PromptStream(_records(), seed=7, filters=filters)


def _train(stream: PromptStream, steps: int, per_step: int = 5) -> list[str]:
    """Take prompts and feed rewards: m0-m3 always solved, m4-m7 never, the rest half the time."""
    seen = []
    for _ in range(steps):
        batch = stream.take(per_step)
        for r in batch:
            k = int(r.id[1:])
            rewards = [1.0] * 4 if k < 4 else [0.0] * 4 if k < 8 else [1.0, 0.0, 1.0, 0.0]
            stream.record_rewards([r.id] * 4, rewards)
        seen += [r.id for r in batch]
    return seen


def test_a_carried_stream_continues_exactly_where_the_first_stage_stopped(tmp_path: Path) -> None:
    whole = _stream()
    _train(whole, 4)  # stage 1: 20 prompts, one epoch boundary crossed (12 prompts)
    first = _stream()
    _train(first, 4)
    write_handoff(tmp_path, first.state_dict(), "fp")
    assert first.pass_rate.status  # the first epoch classified problems
    assert {first.pass_rate.status[f"m{k}"] for k in range(4)} == {"easy"}

    second = _stream()  # stage 2 builds its own stream, then takes the hand-off
    second.load_state_dict(read_handoff(tmp_path, "fp"))
    assert second.state_dict() == whole.state_dict()
    assert _train(second, 6) == _train(whole, 6)  # the same prompts an uninterrupted run would see

    fresh = _stream()  # without carry-over, stage 2 starts again at epoch 0 with every problem
    assert fresh.epoch == 0 and not fresh.pass_rate.status
    assert _train(fresh, 6) != _train(_stream_after(tmp_path), 6)


def _stream_after(handoff_dir: Path) -> PromptStream:
    s = _stream()
    s.load_state_dict(read_handoff(handoff_dir, "fp"))
    return s


def test_handoff_refuses_a_missing_file_or_another_prompt_set(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="carry_over"):
        read_handoff(tmp_path, "fp")
    write_handoff(tmp_path, _stream().state_dict(), "fp")
    assert json.loads((tmp_path / HANDOFF_FILE).read_text())["fingerprint"] == "fp"
    with pytest.raises(ValueError, match="another prompt set"):
        read_handoff(tmp_path, "other")


@pytest.mark.parametrize("cascade,stages", [
    ("qwen3_8b", ["math_rl_24k", "math_rl_32k", "math_rl_40k"]),
    ("qwen3_14b", ["math_rl_28k", "math_rl_40k"]),
])
def test_shipped_math_rl_sub_stages_carry_the_filter_after_the_first(cascade: str, stages: list[str]) -> None:
    cfgs = [load_stage_config(REPO / "nemo_configs" / cascade / f"{name}.yaml") for name in stages]
    assert all(c.filters.epoch_pass_rate is not None for c in cfgs)
    assert [c.filters.epoch_pass_rate.carry_over for c in cfgs] == [False] + [True] * (len(cfgs) - 1)
    # the same prompt set and seed, so the carried epoch orders are the ones the first stage drew
    assert len({(tuple(c.data.train_files), c.train.seed, c.rollout.max_prompt_length) for c in cfgs}) == 1
