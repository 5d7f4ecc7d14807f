"""Loop-level pieces of the RL trainer without Megatron: the prompt stream and its resume state,
sampling seeds, batch assembly, reward scheduling (after generation vs streamed), the reward
model hand-off from the stage graph, and the rollout round on one process."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import (
    EpochPassRateFilter,
    FilterConfig,
    RewardConfig,
    RewardDomain,
    ServedModelConfig,
)
from cascade.generation import Sample, SamplingParams
from cascade.rl.async_reward import PromptJob, score_after_generation, score_while_generating
from cascade.rl.batch import ADVANTAGES, GEN_LOGPROBS, build_minibatches, every_sampled, split_groups
from cascade.rl.data import PromptStream
from cascade.rl.rollout import Group, sampling_seed
from cascade.rl.setup import reward_config, sequence_multiple
from test_rl_support import keyword_records


# ----------------------------------------------------------------------------- prompt stream
def _ids(stream: PromptStream, n: int) -> list[str]:
    return [r.id for r in stream.take(n)]


def test_stream_epochs_are_permutations_and_deterministic() -> None:
    recs = keyword_records(10)
    a = PromptStream(recs, seed=3)
    first = _ids(a, 10)
    assert sorted(first) == sorted(r.id for r in recs)
    second = _ids(a, 10)
    assert sorted(second) == sorted(first) and second != first  # a new order each epoch
    b = PromptStream(recs, seed=3)
    assert _ids(b, 20) == first + second


def test_stream_resume_continues_exactly() -> None:
    recs = keyword_records(7)
    full = PromptStream(recs, seed=1)
    expected = _ids(full, 30)
    part = PromptStream(recs, seed=1)
    got = _ids(part, 11)
    state = part.state_dict()
    resumed = PromptStream(recs, seed=1)
    resumed.load_state_dict(state)
    assert got + _ids(resumed, 19) == expected


def test_stream_pass_rate_filter_drops_solved_and_state_resumes() -> None:
    recs = keyword_records(6)
    filters = FilterConfig(epoch_pass_rate=EpochPassRateFilter(readmit_hard=0.0, readmit_easy=0.0))
    s = PromptStream(recs, seed=0, shuffle=False, filters=filters)
    batch = s.take(6)
    # kw-0 always solved, kw-1 never, the rest mixed
    rewards = {"kw-0": [1, 1], "kw-1": [0, 0]}
    for r in batch:
        s.record_rewards([r.id, r.id], rewards.get(r.id, [1, 0]))
    state = s.state_dict()
    nxt = _ids(s, 4)  # crosses into epoch 1: solved/unsolved problems left out
    assert "kw-0" not in nxt and "kw-1" not in nxt and s.epoch == 1
    assert s.pop_epoch_stats()["pass_rate_filter/easy"] == 1.0
    again = PromptStream(recs, seed=0, shuffle=False, filters=filters)
    again.load_state_dict(state)
    assert _ids(again, 4) == nxt


def test_stream_skips_prompts_that_do_not_fit() -> None:
    recs = keyword_records(5)
    s = PromptStream(recs, seed=0, keep=lambda r: r.id != "kw-2")
    assert "kw-2" not in _ids(s, 12)


def test_sampling_seeds_depend_on_step_round_slot_only() -> None:
    seeds = {sampling_seed(1, step, rnd, slot) for step in (1, 2) for rnd in (0, 1) for slot in (0, 1)}
    assert len(seeds) == 8
    assert sampling_seed(1, 5, 0, 3) == sampling_seed(1, 5, 0, 3)


# ----------------------------------------------------------------------------- batch assembly
def _sample(tokens: Sequence[int], truncated: bool = False) -> Sample:
    return Sample("x", tuple(tokens), tuple(-0.5 - 0.1 * i for i in range(len(tokens))),
                  "length" if truncated else "stop")


def _group(key: str, prompt: Sequence[int], responses: Sequence[Sequence[int]], valid: Sequence[bool]) -> Group:
    rec = keyword_records(1)[0]
    g = Group(key, rec, ChatMode.INSTRUCT, tuple(prompt), tuple(_sample(r) for r in responses),
              raw_rewards=[0.0] * len(responses))
    g.valid = list(valid)
    return g


def test_minibatch_rows_masks_and_logprobs() -> None:
    g1 = _group("1.0.0", [10, 11, 12], [[20, 21], [30]], [True, True])
    g2 = _group("1.0.1", [13, 14], [[40, 41, 42], [50, 51] + list(range(60, 80))], [True, False])
    adv = torch.tensor([[1.0, -1.0], [0.5, -0.5]])
    (mb,) = build_minibatches([g1, g2], adv, num_minibatches=1, pad_id=0, row_multiple=2, seq_multiple=8)
    # the skipped (overlong) rollout is left out, and its 24 tokens do not set the row length:
    # 3 rows padded to a multiple of 2; length 4 rounded to 8
    assert mb.tokens.shape == (4, 8)
    # row 0: ids 10 11 12 20 21 -> inputs 10 11 12 20, labels 11 12 20 21; response labels at 2..3
    assert mb.tokens[0, :4].tolist() == [10, 11, 12, 20]
    assert mb.labels[0, :4].tolist() == [11, 12, 20, 21]
    assert mb.loss_mask[0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert mb.extra[ADVANTAGES][0, 2:4].tolist() == [1.0, 1.0]
    assert mb.extra[GEN_LOGPROBS][0, 2:4].tolist() == pytest.approx([-0.5, -0.6])
    assert mb.loss_mask[1].sum() == 1 and mb.extra[ADVANTAGES][1, 2] == -1.0
    assert mb.loss_mask[2].tolist()[1:4] == [1, 1, 1]  # prompt of 2 tokens: labels from position 1
    assert 50 not in mb.tokens.tolist()[3] and mb.loss_mask[3].sum() == 0  # a padding row
    g3 = _group("1.0.2", [15], [[70], [71]], [False, False])  # a group with no valid rollout is dropped
    assert build_minibatches([g3], torch.zeros(1, 2), num_minibatches=1, pad_id=0, row_multiple=1,
                             seq_multiple=8) == []


def test_all_overlong_step_still_has_rows_to_measure_the_mismatch_on() -> None:
    # a step whose every rollout overlong filtering skipped trains nothing (no minibatch), but the
    # skipped-step path measures the generator/trainer mismatch on every sampled token instead
    g = _group("2.0.0", [15, 16], [[70, 71], [72], []], [False, False, False])
    zeros = torch.zeros(1, 3)
    assert build_minibatches([g], zeros, num_minibatches=1, pad_id=0, row_multiple=1, seq_multiple=4) == []
    (mb,) = build_minibatches(every_sampled([g]), zeros, num_minibatches=1, pad_id=0, row_multiple=1,
                              seq_multiple=4)
    assert mb.tokens.shape == (2, 4)  # the empty rollout has no token to measure: left out
    assert mb.loss_mask.tolist() == [[0, 1, 1, 0], [0, 1, 0, 0]]
    assert mb.extra[GEN_LOGPROBS][0, 1:3].tolist() == pytest.approx([-0.5, -0.6])
    assert g.valid == [False, False, False]  # the training view of the group is untouched


def test_minibatches_keep_groups_whole() -> None:
    groups = [[i] * 2 for i in range(5)]
    chunks = split_groups(groups, 2)
    assert [len(c) for c in chunks] == [2, 3] or [len(c) for c in chunks] == [3, 2]
    assert [x for c in chunks for x in c] == groups
    assert len(split_groups(groups[:1], 4)) == 1


def test_sequence_multiple() -> None:
    from cascade.config.schema.common import ParallelConfig

    assert sequence_multiple(ParallelConfig()) == 8
    assert sequence_multiple(ParallelConfig(tensor=2, context=3)) == 24
    assert sequence_multiple(ParallelConfig(tensor=16, sequence_parallel=True)) == 16


# ----------------------------------------------------------------------------- reward model hand-off
def test_reward_model_comes_from_the_side_stage(tmp_path: Path) -> None:
    side = tmp_path / "side_rm"
    (side / "hf").mkdir(parents=True)
    (side / "hf" / "config.json").write_text("{}")
    cfg = reward_config(RewardConfig(domain=RewardDomain.REWARD_MODEL), {"reward_model": side})
    assert cfg.reward_model.checkpoint == str(side / "hf")
    given = RewardConfig(domain=RewardDomain.REWARD_MODEL, reward_model=ServedModelConfig(endpoint="http://x/score"))
    assert reward_config(given, {"reward_model": side}) is given
    with pytest.raises(ValueError, match="needs a reward model"):
        reward_config(RewardConfig(domain=RewardDomain.INSTRUCTION_RM), {})
    math = RewardConfig(domain=RewardDomain.MATH)
    assert reward_config(math, {}) is math


# ----------------------------------------------------------------------------- reward scheduling
@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory: pytest.TempPathFactory):
    from cascade.generation import GeneratorConfig, build_generator
    from test_rl_support import tiny_hf

    hf = tiny_hf(tmp_path_factory.mktemp("tiny") / "hf")
    gen = build_generator(GeneratorConfig(model_path=str(hf), backend="transformers", max_batch_size=8))
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def keyword_scorer():
    from cascade.rewards import build_scorer

    scorer = build_scorer(RewardConfig(domain=RewardDomain.INSTRUCTION, num_workers=1))
    yield scorer
    scorer.close()


def _jobs(gen: Any, n: int) -> list[PromptJob]:
    from cascade.data.tokenizer import encode_generation_prompt

    recs = keyword_records(n)
    jobs = []
    for k, r in enumerate(recs):
        ids = encode_generation_prompt(gen.tokenizer, r.prompt, mode="instruct")
        base = {**r.reward_fields(), "kwargs": [{"keywords": ["e"]}]}  # random text often has an "e"
        jobs.append(PromptJob(tuple(ids), SamplingParams(n=2, max_new_tokens=6, seed=100 + k),
                              lambda text, base=base: {**base, "response": text}))
    return jobs


def test_streamed_scoring_matches_scoring_after_generation(tiny_generator: Any, keyword_scorer: Any) -> None:
    jobs = _jobs(tiny_generator, 6)
    after, t_after = score_after_generation(tiny_generator, keyword_scorer, jobs, 2)
    stream, t_stream = score_while_generating(tiny_generator, keyword_scorer, jobs, 2)
    # seeded sampling: chunking changes neither tokens nor (beyond batch-padding float noise) logprobs
    assert [[s.token_ids for s in g.output.samples] for g in after] == \
        [[s.token_ids for s in g.output.samples] for g in stream]
    for a, b in zip(after, stream):
        for sa, sb in zip(a.output.samples, b.output.samples):
            assert sa.logprobs == pytest.approx(sb.logprobs, abs=1e-4)
    assert [[r.reward for r in g.results] for g in after] == [[r.reward for r in g.results] for g in stream]
    rewards = {r.reward for g in after for r in g.results}
    assert rewards <= {0.0, 1.0}
    assert (t_after.chunks, t_stream.chunks) == (1, 3)
    assert t_stream.reward_busy_s > 0 and t_stream.generation_s > 0


# ----------------------------------------------------------------------------- vocab-parallel entropy
ENTROPY_WORKER = r"""
import json, sys, torch
from cascade.config.schema.common import ParallelConfig
from cascade.engine import init_distributed, destroy_distributed
from cascade.rl import token_entropy
from cascade.rl.loss_fn import vocab_parallel_entropy
from megatron.core import parallel_state as ps
init_distributed(ParallelConfig(tensor=2), seed=0)
g = torch.Generator().manual_seed(0)
full = (3 * torch.randn(2, 5, 64, generator=g)).requires_grad_(True)
weights = torch.rand(2, 5, generator=g)
(token_entropy(full) * weights).sum().backward()
rank = ps.get_tensor_model_parallel_rank()
shard = full.detach()[..., rank * 32:(rank + 1) * 32].clone().requires_grad_(True)
ent = vocab_parallel_entropy(shard)
(ent * weights).sum().backward()
ok_value = torch.allclose(ent, token_entropy(full.detach()), atol=1e-5)
ok_grad = torch.allclose(shard.grad, full.grad[..., rank * 32:(rank + 1) * 32], atol=1e-5)
print("RESULT", json.dumps({"value": bool(ok_value), "grad": bool(ok_grad)}), flush=True)
destroy_distributed()
"""


def test_vocab_parallel_entropy_matches_full_vocabulary(tmp_path: Path) -> None:
    """Entropy of vocab-sharded logits over two TP ranks: same values and gradients as one rank."""
    from cascade.engine.launch import run_local
    from test_rl_support import REPO, job_env

    results = run_local(2, ["-c", ENTROPY_WORKER], timeout=600, log_dir=tmp_path, env=job_env(), cwd=REPO)
    for r in results:
        assert r.returncode == 0, r.output[-3000:]
        line = [x for x in r.output.splitlines() if x.startswith("RESULT ")][-1]
        assert json.loads(line[len("RESULT "):]) == {"value": True, "grad": True}


LOSS_TOKENS_WORKER = r"""
import json, torch
from cascade.config.schema.common import ParallelConfig
from cascade.config.schema.rl import LossConfig
from cascade.engine import init_distributed, destroy_distributed, token_logprobs
from cascade.engine.batch import MicroBatch
from cascade.rl import policy_loss
from cascade.rl.batch import ADVANTAGES, GEN_LOGPROBS
from cascade.rl.loss_fn import make_loss_fn, mismatch_metrics, vocab_parallel_entropy
from megatron.core import parallel_state as ps
init_distributed(ParallelConfig(tensor=2), seed=0)
rank, half, temp = ps.get_tensor_model_parallel_rank(), 32, 0.7
g = torch.Generator().manual_seed(0)
full = 3 * torch.randn(5, 2, 64, generator=g)  # [s, b, V] as the output layer returns it
labels = torch.randint(0, 64, (2, 5), generator=g)
mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.float)
mb = MicroBatch(tokens=labels, labels=labels, loss_mask=mask,
                extra={ADVANTAGES: torch.randn(2, 5, generator=g), GEN_LOGPROBS: -torch.rand(2, 5, generator=g)})
out = {}
for coef in (0.0, 0.01):
    cfg = LossConfig(entropy_coef=coef)
    sides = {}
    for side in ("ours", "all_positions"):
        shard = full[..., rank * half:(rank + 1) * half].clone().requires_grad_(True)
        logits = shard.transpose(0, 1)
        lp = token_logprobs(logits.contiguous(), labels, temp)
        if side == "ours":
            tap = type("Tap", (), {"pop_rows": lambda self, m, s=shard: s.transpose(0, 1)[m]})()
            loss, _, metrics = make_loss_fn(cfg, temperature=temp, tap=tap, mismatch=True)(lp, mb)
        else:  # the reference: entropy and T=1 logprobs at every position, the loss masks them
            ent = vocab_parallel_entropy(logits / temp)
            res = policy_loss(lp, mb.extra[ADVANTAGES], mask, cfg, entropy=ent)
            loss, metrics = res.loss_sum, dict(res.metrics)
            with torch.no_grad():
                metrics.update(mismatch_metrics(token_logprobs(logits.detach().contiguous().clone(), labels), mb.extra[GEN_LOGPROBS], mask))
        loss.backward()
        sides[side] = (loss.detach(), {k: v.detach() for k, v in metrics.items()}, shard.grad)
    (l1, m1, g1), (l2, m2, g2) = sides["ours"], sides["all_positions"]
    out[str(coef)] = {"loss": bool(torch.allclose(l1, l2, atol=1e-6)), "grad": bool(torch.allclose(g1, g2, atol=1e-6)),
                      "metrics": sorted(k for k in m2 if not torch.allclose(m1[k].double(), m2[k].double(), atol=1e-6)),
                      "same_keys": sorted(m1) == sorted(m2)}
print("RESULT", json.dumps(out), flush=True)
destroy_distributed()
"""


def test_entropy_and_mismatch_on_loss_tokens_equal_every_position(tmp_path: Path) -> None:
    """The RL loss reads entropy and the T=1 mismatch logprobs on loss tokens only: the same loss,
    gradient and metrics as computing them at every position, over two vocab-parallel ranks."""
    from cascade.engine.launch import run_local
    from test_rl_support import REPO, job_env

    results = run_local(2, ["-c", LOSS_TOKENS_WORKER], timeout=600, log_dir=tmp_path, env=job_env(), cwd=REPO)
    for r in results:
        assert r.returncode == 0, r.output[-3000:]
        line = [x for x in r.output.splitlines() if x.startswith("RESULT ")][-1]
        same = {"loss": True, "grad": True, "metrics": [], "same_keys": True}
        assert json.loads(line[len("RESULT "):]) == {"0.0": same, "0.01": same}


# ----------------------------------------------------------------------------- overlong rule per stage
def _collector(overlong_filtering: bool, records: list) -> Any:
    from cascade.config.schema.common import ModelConfig, ModelFamily
    from cascade.config.schema.rl import RLStageConfig
    from cascade.rl.rollout import RolloutCollector

    model = ModelConfig(family=ModelFamily.QWEN3, hf_name="x", num_layers=1, hidden_size=8, ffn_hidden_size=8,
                        num_attention_heads=1, num_query_groups=1, kv_channels=8, vocab_size=8,
                        max_position_embeddings=8)
    cfg = RLStageConfig(model=model, reward=RewardConfig(domain=RewardDomain.INSTRUCTION),
                        filters=FilterConfig(overlong_filtering=overlong_filtering))
    return RolloutCollector(cfg, None, None, PromptStream(records, seed=0), None)  # type: ignore[arg-type]


def _truncated_group(record: Any, rewards: list[float]) -> Group:
    samples = (_sample([1, 2], truncated=True), _sample([3]))
    return Group("1.0.0", record, ChatMode.INSTRUCT, (9,), samples, raw_rewards=list(rewards))


def test_truncated_rollouts_zeroed_skipped_or_scored_by_the_rm() -> None:
    from dataclasses import replace

    verifier = keyword_records(1)[0]
    rm = replace(verifier, domain=RewardDomain.REWARD_MODEL, instruction_id_list=None, kwargs=None)
    zero = _collector(False, [verifier])._finish([_truncated_group(verifier, [1.0, 1.0])])
    assert zero.rewards.tolist() == [[0.0, 1.0]] and zero.valid.tolist() == [[True, True]]
    skip = _collector(True, [verifier])._finish([_truncated_group(verifier, [1.0, 1.0])])
    assert skip.rewards.tolist() == [[1.0, 1.0]] and skip.valid.tolist() == [[False, True]]
    scored = _collector(False, [rm])._finish([_truncated_group(rm, [-2.5, 0.5])])  # C1 §4.3: RM judges it
    assert scored.rewards.tolist() == [[-2.5, 0.5]] and scored.valid.tolist() == [[True, True]]


# ----------------------------------------------------------------------------- C2 SWE RL: unsolved prompts
def _masking_collector(bar: float | None, records: list) -> Any:
    from dataclasses import replace

    base = _collector(False, records)
    base.cfg = replace(base.cfg, filters=FilterConfig(mask_unsolved_below=bar))
    return base


def _two_sample_group(record: Any, key: str, rewards: list[float]) -> Group:
    return Group(key, record, ChatMode.INSTRUCT, (9,), (_sample([1]), _sample([2])), raw_rewards=list(rewards))


def test_prompts_no_rollout_solved_above_the_bar_train_nothing() -> None:
    rec = keyword_records(1)[0]
    groups = [_two_sample_group(rec, "1.0.0", [0.5, 0.2]), _two_sample_group(rec, "1.0.1", [0.51, 0.0]),
              _two_sample_group(rec, "1.0.2", [0.0, 0.0])]
    masked = _masking_collector(0.5, [rec])._finish(groups)
    assert masked.valid.tolist() == [[False, False], [True, True], [False, False]]  # "exceeds 0.5": 0.5 is not enough
    assert [g.unsolved_masked for g in groups] == [True, False, True]
    assert torch.allclose(masked.rewards, torch.tensor([[0.5, 0.2], [0.51, 0.0], [0.0, 0.0]]))  # rewards kept for metrics
    plain = _masking_collector(None, [rec])._finish([_two_sample_group(rec, "1.0.0", [0.5, 0.2])])
    assert plain.valid.tolist() == [[True, True]]


def test_multi_domain_stage_refuses_prompts_of_unlisted_domains() -> None:
    from dataclasses import replace

    from cascade.rl.setup import check_routed_domains

    rec = keyword_records(1)[0]
    listed = RewardConfig(domains=[RewardDomain.INSTRUCTION, RewardDomain.MATH])
    check_routed_domains(listed, [rec])  # instruction is listed
    check_routed_domains(RewardConfig(domain=RewardDomain.INSTRUCTION_RM), [rec])  # one scorer scores every row
    with pytest.raises(ValueError, match="prompt 'kw-0' has domain 'instruction'.*math\\+code"):
        check_routed_domains(replace(listed, domains=[RewardDomain.MATH, RewardDomain.CODE]), [rec])
