"""The `genrm` domain (C2 RLHF): each prompt's G rollouts are compared pairwise by a served
generative reward model, all C(G, 2) pairs, and aggregated per rollout by `aggregate.py`.

Rows: `{"prompt", "response"}` plus a group id. The scorer needs a whole group at once: rows are
grouped by `group` / `uid` / `prompt_id` (the RL loop gives every row of a prompt the same
`group` and scores whole groups together), else by identical `prompt`. With the CLI keep a
group's rows in one chunk (`--chunk-size` a multiple of G, rows of a group together).

What the GenRM sees: the conversation (the policy's ` /think` flags removed) as user/assistant
turns, then the two answers in the roles `response_1` and `response_2` (the roles the released
GenRM's chat template expects). An answer is the text after `</think>`, or the whole response
when it has none (an unfinished response is judged as it is and naturally loses). The lengths
of the length adjustment are the thinking part (before `</think>`) and the judged answer.

Failures: a row without its fields gets reward 0 and `info.error` and leaves its group; a group
with fewer than 2 good rows gets `info.error` on each; a GenRM that does not answer (after the
bounded retries) fails its whole group with reward 0 and `info.error`; an answer without valid
scores counts as a tie and is reported in `info.unparsed_judgements`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from cascade.config.schema.rl import GenRMConfig, RewardConfig, RewardDomain
from cascade.rewards.genrm.aggregate import AggregateParams, Judgement, aggregate, all_pairs, parse_judgement
from cascade.rewards.genrm.client import chat_completion, chat_url
from cascade.rewards.registry import RewardResult, Row, error_result, register_reward, require_fields
from cascade.rewards.reward_model.domains import group_key, rm_conversation
from cascade.rewards.text import answer_or_whole, split_thinking

Message = dict[str, str]


class PairJudge(Protocol):
    """Raw GenRM outputs for (conversation, answer 1, answer 2) triples, in order."""

    def judge(self, items: Sequence[tuple[list[Message], str, str]]) -> list[str]: ...

    def close(self) -> None: ...


def genrm_messages(history: list[Message], answer_1: str, answer_2: str) -> list[Message]:
    return history + [{"role": "response_1", "content": answer_1}, {"role": "response_2", "content": answer_2}]


class HttpGenRM:
    """The GenRM behind an OpenAI-compatible chat endpoint (e.g. `vllm serve <genrm>`)."""

    def __init__(self, cfg: GenRMConfig, backoff_s: float = 1.0) -> None:
        if not cfg.endpoint:
            raise ValueError("reward domain genrm needs `genrm.endpoint` (the served GenRM's URL)")
        self.url, self.cfg, self.backoff_s = chat_url(cfg.endpoint), cfg, backoff_s
        self.pool = ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="genrm")

    def _one(self, item: tuple[list[Message], str, str]) -> str:
        body: dict[str, Any] = {"messages": genrm_messages(*item), "max_tokens": self.cfg.max_tokens,
                                "temperature": self.cfg.temperature, "top_p": self.cfg.top_p}
        if self.cfg.name:
            body["model"] = self.cfg.name
        return chat_completion(self.url, body, self.cfg.timeout_s, self.cfg.retries, self.backoff_s)

    def judge(self, items: Sequence[tuple[list[Message], str, str]]) -> list[str]:
        return list(self.pool.map(self._one, items))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def lengths(response: str) -> tuple[int, int]:
    """(thinking, answer) lengths in characters of the stripped texts."""
    return len(split_thinking(response).thinking.strip()), len(answer_or_whole(response).strip())


@register_reward(RewardDomain.GENRM)
class GenRMReward:
    """Batch scorer: groups rows, judges all pairs of each group, aggregates per rollout."""

    def __init__(self, cfg: RewardConfig, judge: PairJudge | None = None) -> None:
        g = cfg.genrm
        self.cfg = g
        self.params = AggregateParams(g.length_lambda_think, g.length_lambda_answer, g.concise_beta_think,
                                      g.concise_beta_answer, g.concise_percentile)
        self.judge = judge if judge is not None else HttpGenRM(g)

    def score(self, rows: Sequence[Row]) -> list[RewardResult]:
        results: list[RewardResult | None] = [None] * len(rows)
        groups: dict[Hashable, list[tuple[int, list[Message], str]]] = defaultdict(list)
        for i, row in enumerate(rows):
            err = require_fields(row, ("prompt", "response"))
            if err is None:
                try:
                    conv = rm_conversation(row["prompt"], str(row["response"]))
                    groups[group_key(row)].append((i, conv[:-1], str(row["response"])))
                    continue
                except ValueError as e:
                    err = str(e)
            results[i] = error_result(err)
        for members in groups.values():
            for i, res in zip([m[0] for m in members], self._score_group(members)):
                results[i] = res
        return results  # type: ignore[return-value]

    def _score_group(self, members: list[tuple[int, list[Message], str]]) -> list[RewardResult]:
        n = len(members)
        if n < 2:
            return [error_result("genrm needs at least 2 rollouts of the prompt in one batch (group id)") for _ in members]
        pairs = all_pairs(n)
        answers = [answer_or_whole(resp).strip() for _, _, resp in members]
        history = members[0][1]
        try:
            raw = self.judge.judge([(history, answers[i], answers[j]) for i, j in pairs])
        except Exception as e:  # the GenRM is down: the whole group says so, reward 0
            return [error_result(f"genrm failed: {str(e)[:300]}", group_size=n) for _ in members]
        judgements: list[Judgement] = [parse_judgement(t, self.cfg.tie_score) for t in raw]
        lens = [lengths(resp) for _, _, resp in members]
        scores = aggregate(n, pairs, judgements, [t for t, _ in lens], [a for _, a in lens], self.params)
        out = []
        for s, (think_len, answer_len) in zip(scores, lens):
            out.append(RewardResult(s.reward, {
                "genrm_base": s.base, "think_adjust": s.think_adjust, "answer_adjust": s.answer_adjust,
                "concise_bonus": s.concise_bonus, "think_chars": think_len, "answer_chars": answer_len,
                "comparisons": s.comparisons, "tiebreaks": s.tiebreaks, "unparsed_judgements": s.unparsed,
                "group_size": n}))
        return out

    def close(self) -> None:
        self.judge.close()
