"""Instruction-following reward (IF-RL): `reward.py` scores rows, `checkers.py` is the one place
that imports the pinned IFEval/IFBench checker classes (offline, without their network side effects)."""

from cascade.rewards.instruction.reward import InstructionReward, evaluate, registries

__all__ = ["InstructionReward", "evaluate", "registries"]
