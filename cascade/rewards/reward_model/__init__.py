"""Reward-model rewards: `scorer.py` scores conversations with a served or local reward model,
`server.py` shares one local checkpoint between trainer ranks over HTTP, and `domains.py` holds
the domains built on it (RLHF `reward_model`, thinking IF-RL `instruction_rm`)."""

from cascade.rewards.reward_model.scorer import (
    HEAD_FILE,
    HttpRewardModel,
    LocalRewardModel,
    Message,
    RewardModelScorer,
    make_rm_scorer,
)

__all__ = ["HEAD_FILE", "HttpRewardModel", "LocalRewardModel", "Message", "RewardModelScorer", "make_rm_scorer"]
