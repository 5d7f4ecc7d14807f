"""The RL algorithm core: pure functions on tensors, tested without a model (C1 §3.0–3.8, C2 §4).

The RL loop (``cascade.rl.trainer``) wires these to the engine, the generator and the rewards.
Layout conventions: per-rollout values of one step are ``[num_groups, G]`` (the G rollouts of a
prompt in one row; ``flat.view(-1, G)``); per-token values are ``[B, T]`` with a 0/1 or bool
``mask`` of valid response tokens. Configs are passed as their schema sections
(``LossConfig``, ``FilterConfig``, ``EpochPassRateFilter``, ``MOPDLossConfig``, ``ChatMode``).

One GRPO step, in order::

    modes  = assign_modes(P, cfg.rollout.mode, seed=seed, step=step)       # mode_mix
    fill   = fill_batch(generate, P, cfg.filters)                          # filters: rounds of
        # generate(needed) -> GenerationRound(groups, rewards [n, G], valid [n, G] | None);
        # inside generate: rewards from cascade.rewards (IF-RL thinking: the instruction_rm
        # scorer already combines R_IF + sigmoid(z(RM)); give its rows a `group` id),
        # then apply_overlong(rewards, truncated, cfg.filters.overlong_filtering) -> (rewards, valid)
    adv    = group_advantages(fill.rewards, cfg.loss, valid=fill.valid)    # advantages, [P, G]
    mask   = response_mask & fill.valid.flatten()[:, None]                 # skipped rollouts: no loss
    tok_adv = token_advantages(adv, mask)                                  # [P*G, T]
    # per micro-batch, inside the engine's loss function (logprobs with grad):
    out    = policy_loss(logprobs, tok_adv, mask, cfg.loss, old_logprobs=gen_logprobs,
                         ref_logprobs=ref_or_None, entropy=ent_or_None)
    return out.loss_sum, out.normalizer.int(), out.metrics                # engine LossFn format
    # after the step:
    mm     = mismatch_stats(train_logprobs, gen_logprobs, mask).as_metrics()
    line   = jsonl_line(step, step_metrics(rewards=..., response_lengths=..., truncated=...,
                        groups_generated=fill.generated_groups, groups_dropped=fill.dropped_groups,
                        extra={**out_summary, **mm}, timings=timer.timings))

Notes for the loop:

- Strictly on-policy is ``cfg.loss.num_minibatches == 1``: ``policy_loss`` then ignores
  ``old_logprobs`` (ratio exactly 1, REINFORCE). With ``num_minibatches > 1`` split the batch into
  that many optimizer steps and pass the generator's logprobs as ``old_logprobs``.
- Token aggregation's normaliser is the valid-token count (an integer, what Megatron's
  ``calculate_per_token_loss`` sums). Sequence aggregation's is the number of sequences when each
  row is one whole sequence; with packing or context parallelism pass ``seq_token_counts``
  (``sequence_token_counts`` on the unsliced batch) and normalise by the global sequence count.
- ``entropy`` must come from full-vocabulary logits (``token_entropy``; vocab-parallel logits need
  a TP all-reduce in the engine). Leave it ``None`` when ``entropy_coef == 0`` and not logging it.
- Math RL: ``PassRateFilter.record(problem_ids, rewards)`` every step, ``end_epoch(pool)`` at each
  epoch boundary (returns the next epoch's pool), ``state_dict()`` into the checkpoint.
- ``fill_batch`` returns a partial (possibly empty) batch with a warning when it cannot fill: the
  loop trains on what it has, or skips the optimizer step when nothing is left.

Modules:

- ``aggregation``: ``aggregate`` (token- vs sequence-level, (sum, normaliser) pairs for sharded
  batches), ``sequence_token_counts``, ``LossOutput`` (loss, loss_sum, normalizer, metrics as
  ``[sum, count]`` tensors, extrema), ``summarize``, masked helpers.
- ``advantages``: ``group_advantages`` (shaping + GRPO normalisation; zero-variance groups → 0),
  ``group_zscore``, ``tanh_zscore``, ``shape_rewards``, ``constant_groups``, ``token_advantages``.
- ``policy_loss``: ``policy_loss`` (REINFORCE on-policy, PPO clip off-policy, k3 KL, entropy),
  ``k3_kl``, ``importance_ratio``, ``clipped_surrogate``, ``token_entropy``.
- ``mismatch``: ``mismatch_stats`` / ``MismatchStats`` (``token_mult_prob_error``, max/mean |Δlogp|),
  ``token_mult_prob_error``, ``truncated_is_weights``.
- ``filters``: ``informative_groups``, ``fill_batch`` / ``GenerationRound`` / ``FillResult``
  (dynamic sampling with bounded refill, warns and returns a partial batch),
  ``apply_overlong`` / ``OverlongResult``, ``PassRateFilter`` (epoch pass-rate filter with
  ``state_dict``/``load_state_dict``).
- ``mode_mix``: ``assign_modes`` (thinking / instruct / half_half).
- ``mopd``: ``mopd_loss`` (C2 §4.4), ``route_to_teachers``.
- ``metrics``: ``step_metrics``, ``reward_metrics``, ``length_metrics``, ``jsonl_line``, ``StepTimer``.
"""

from cascade.rl.advantages import (
    constant_groups,
    group_advantages,
    group_zscore,
    shape_rewards,
    tanh_zscore,
    token_advantages,
)
from cascade.rl.aggregation import LossOutput, aggregate, sequence_token_counts, summarize
from cascade.rl.filters import (
    FillResult,
    GenerationRound,
    OverlongResult,
    PassRateFilter,
    apply_overlong,
    fill_batch,
    informative_groups,
)
from cascade.rl.metrics import StepTimer, jsonl_line, length_metrics, reward_metrics, step_metrics
from cascade.rl.mismatch import MismatchStats, mismatch_stats, token_mult_prob_error, truncated_is_weights
from cascade.rl.mode_mix import assign_modes
from cascade.rl.mopd import mopd_loss, route_to_teachers
from cascade.rl.policy_loss import clipped_surrogate, importance_ratio, k3_kl, policy_loss, token_entropy

__all__ = [
    "FillResult",
    "GenerationRound",
    "LossOutput",
    "MismatchStats",
    "OverlongResult",
    "PassRateFilter",
    "StepTimer",
    "aggregate",
    "apply_overlong",
    "assign_modes",
    "clipped_surrogate",
    "constant_groups",
    "fill_batch",
    "group_advantages",
    "group_zscore",
    "importance_ratio",
    "informative_groups",
    "jsonl_line",
    "k3_kl",
    "length_metrics",
    "mismatch_stats",
    "mopd_loss",
    "policy_loss",
    "reward_metrics",
    "route_to_teachers",
    "sequence_token_counts",
    "shape_rewards",
    "step_metrics",
    "summarize",
    "tanh_zscore",
    "token_advantages",
    "token_entropy",
    "token_mult_prob_error",
    "truncated_is_weights",
]
