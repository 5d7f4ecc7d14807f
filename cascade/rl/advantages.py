"""Group-normalised advantages and group-level reward transforms (GRPO, C1 §4.1.2 Eq. 1).

Every function here works on rewards laid out as ``[num_groups, group_size]`` (the G rollouts of
one prompt in one row: ``flat.view(-1, G)``), with an optional boolean ``valid`` of the same shape
marking rollouts that take part (False = skipped, e.g. a truncated rollout under overlong
filtering): skipped rollouts neither enter the group statistics nor get an advantage.

- ``Â_i = (r_i − mean(r)) / (std(r) + eps)`` (``std_normalize=False``: ``r_i − mean(r)``), with the
  unbiased std as in verl (C1 trains with verl). A group whose valid rewards are all equal (or
  that has fewer than two valid rollouts) gets advantage exactly 0, never NaN.
- reward shaping "tanh_zscore" (C1 §6.3, bag of tricks): ``r ← tanh(z(r))``, bounded to [−1, 1],
  before the usual normalisation.

The IF-RL reward of thinking models (C1 §4.4, ``R_IF + sigmoid(z(R_RM))`` if ``R_IF = 1``) is not
here: the ``instruction_rm`` scorer computes it (``cascade.rewards.reward_model.domains.combine_if_rm``),
grouping rows by their ``group``/``uid``/``prompt_id`` field.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cascade.config.schema.rl import LossConfig
from cascade.rl.aggregation import as_mask


def _valid(rewards: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [num_groups, group_size], got shape {tuple(rewards.shape)}")
    if valid is None:
        return torch.ones_like(rewards, dtype=torch.bool)
    if valid.shape != rewards.shape:
        raise ValueError(f"valid mask shape {tuple(valid.shape)} != rewards shape {tuple(rewards.shape)}")
    return as_mask(valid)


def constant_groups(rewards: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``[num_groups]`` bool: True where the valid rewards are all equal (or fewer than 2 are valid).

    Such groups carry no learning signal: their advantages are 0 (and DAPO drops them).
    """
    v = _valid(rewards, valid)
    r = rewards.to(torch.float64)  # exact for int and float32 rewards
    hi = torch.where(v, r, torch.full_like(r, -torch.inf)).amax(-1)
    lo = torch.where(v, r, torch.full_like(r, torch.inf)).amin(-1)
    return (v.sum(-1) < 2) | (hi == lo)


def group_zscore(
    rewards: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    std_normalize: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """``(r − mean)/(std + eps)`` per group (or ``r − mean``); 0 for constant groups and skipped rollouts."""
    v = _valid(rewards, valid)
    r = rewards.to(torch.float32)
    vf = v.to(torch.float32)
    n = vf.sum(-1, keepdim=True)
    mean = (r * vf).sum(-1, keepdim=True) / n.clamp(min=1)
    centred = torch.where(v, r - mean, torch.zeros_like(r))
    out = centred
    if std_normalize:
        std = ((centred**2).sum(-1, keepdim=True) / (n - 1).clamp(min=1)).sqrt()
        out = centred / (std + eps)
    keep = v & ~constant_groups(rewards, v)[:, None]
    return torch.where(keep, out, torch.zeros_like(out))


def tanh_zscore(
    rewards: torch.Tensor, valid: torch.Tensor | None = None, *, eps: float = 1e-6
) -> torch.Tensor:
    """C1 §6.3 reward shaping: group z-score then tanh, so shaped rewards lie in [−1, 1]."""
    return torch.tanh(group_zscore(rewards, valid, eps=eps))


def _no_shaping(
    rewards: torch.Tensor, valid: torch.Tensor | None = None, *, eps: float = 1e-6
) -> torch.Tensor:
    return rewards.to(torch.float32)


_SHAPERS: dict[str, Callable[..., torch.Tensor]] = {"none": _no_shaping, "tanh_zscore": tanh_zscore}


def shape_rewards(
    rewards: torch.Tensor, mode: str, valid: torch.Tensor | None = None, *, eps: float = 1e-6
) -> torch.Tensor:
    """Apply ``LossConfig.reward_shaping`` (``"none"`` or ``"tanh_zscore"``)."""
    try:
        shaper = _SHAPERS[mode]
    except KeyError:
        raise ValueError(f"unknown reward_shaping {mode!r}; expected one of {sorted(_SHAPERS)}") from None
    return shaper(rewards, valid, eps=eps)


def group_advantages(
    rewards: torch.Tensor, cfg: LossConfig | None = None, *, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-rollout advantages ``[num_groups, group_size]``: shaping (if configured), then the GRPO
    group normalisation of ``cfg`` (``std_normalize``, ``advantage_eps``)."""
    cfg = cfg or LossConfig()
    shaped = shape_rewards(rewards, cfg.reward_shaping, valid, eps=cfg.advantage_eps)
    return group_zscore(shaped, valid, std_normalize=cfg.std_normalize, eps=cfg.advantage_eps)


def token_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sequence advantages ``[N]`` (or ``[groups, G]``) to tokens ``[N, T]``; 0 on padding."""
    flat = advantages.reshape(-1, 1).to(torch.float32)
    if flat.shape[0] != mask.shape[0]:
        raise ValueError(f"{flat.shape[0]} advantages for {mask.shape[0]} sequences")
    return torch.where(as_mask(mask), flat, torch.zeros((), device=mask.device))

