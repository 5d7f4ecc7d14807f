"""SWE RL reward, execution-free: `reward.py` is the domain scorer, `patch.py` turns edits into
diffs and measures lexical similarity, `judge.py` asks an LLM judge for semantic similarity."""

from cascade.rewards.swe.reward import SWEReward

__all__ = ["SWEReward"]
