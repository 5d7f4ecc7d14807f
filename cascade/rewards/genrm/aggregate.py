"""Pairwise GenRM judgements -> one reward per rollout (C2 RLHF, aggregated as Nemotron-3-Nano).

Pure functions, no I/O, so the arithmetic is unit-tested by hand.

The GenRM reads the conversation and two answers (`response_1`, `response_2`), reasons, then gives
each answer a helpfulness score in 1..5 and the pair a ranking in 1..6 (1: response 1 much better,
6: response 2 much better, 3.5 is the midpoint). `parse_judgement` accepts a JSON object
`{"score_1": .., "score_2": .., "ranking": ..}` (the last one in the text) or the boxed form
`\\boxed{s1, s2}` ... `\\boxed{r}`; anything else, or values out of range, is a tie
(`tie_score`, `tie_score`, 3.5) marked `parsed=False`.

`aggregate` for a group of n rollouts and its C(n, 2) judged pairs (each unordered pair once, the
lower index as response 1):
  * tie-breaker: when s_i == s_j, s_i += 3.5 - r and s_j += r - 3.5;
  * base reward R_base_i = mean of rollout i's (tie-broken) scores over its comparisons;
  * length-normalised adjustment, separately for the thinking and the answer length l:
    w_i = 1 - (l_i - l_min) / (l_max - l_min) (w_i = 0 for all when l_max == l_min),
    w~_i = w_i - mean_j w_j, R_i = R_base_i + λ_think w~_i^think + λ_answer w~_i^answer;
  * quality-gated conciseness bonus: the rollout with the shortest thinking gets +β_think if its
    R_base >= τ, the rollout with the shortest answer gets +β_answer likewise, τ = the
    `percentile`-th percentile of the group's R_base (linear interpolation, as numpy's default).
    Our choices where the paper is silent: lengths are characters of the stripped text; only
    non-empty texts compete for "shortest" (an empty answer is missing, not concise); among equal
    shortest lengths the first rollout wins.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

RANKING_MIDPOINT = 3.5
SCORE_RANGE = (1.0, 5.0)
RANKING_RANGE = (1.0, 6.0)


@dataclass(frozen=True)
class Judgement:
    score_1: float
    score_2: float
    ranking: float
    parsed: bool = True  # False: the GenRM's output had no valid scores, so this is a tie


@dataclass(frozen=True)
class AggregateParams:
    length_lambda_think: float = 0.5
    length_lambda_answer: float = 0.5
    concise_beta_think: float = 0.5
    concise_beta_answer: float = 0.5
    concise_percentile: float = 80.0


@dataclass(frozen=True)
class RolloutScore:
    reward: float
    base: float  # R_base: mean tie-broken score over the rollout's comparisons
    think_adjust: float  # λ_think · w~_think
    answer_adjust: float  # λ_answer · w~_answer
    concise_bonus: float  # β_think and/or β_answer when earned
    comparisons: int
    tiebreaks: int
    unparsed: int  # comparisons whose judgement could not be parsed (counted as ties)


def all_pairs(n: int) -> list[tuple[int, int]]:
    """Every unordered pair once, lower index first: C(n, 2) comparisons (16 rollouts: 120)."""
    return list(combinations(range(n), 2))


def tie(tie_score: float = 3.0) -> Judgement:
    return Judgement(tie_score, tie_score, RANKING_MIDPOINT, parsed=False)


def _in_range(x: float, lo_hi: tuple[float, float]) -> bool:
    return math.isfinite(x) and lo_hi[0] <= x <= lo_hi[1]


def _valid(s1: object, s2: object, r: object) -> Judgement | None:
    try:
        a, b, c = float(s1), float(s2), float(r)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if _in_range(a, SCORE_RANGE) and _in_range(b, SCORE_RANGE) and _in_range(c, RANKING_RANGE):
        return Judgement(a, b, c)
    return None


def _json_objects(text: str) -> list[str]:
    """Balanced `{...}` spans (outermost), scanning strings so braces inside them do not count."""
    spans, depth, start, in_str, esc = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_judgement(text: str, tie_score: float = 3.0) -> Judgement:
    """The GenRM's scores (see module docstring); an unparsable output is a tie, `parsed=False`."""
    if not isinstance(text, str):
        return tie(tie_score)
    for span in reversed(_json_objects(text)):
        try:
            obj = json.loads(span)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("overall"), dict):
            obj = obj["overall"]
        if isinstance(obj, dict) and {"score_1", "score_2", "ranking"} <= obj.keys():
            j = _valid(obj["score_1"], obj["score_2"], obj["ranking"])
            if j is not None:
                return j
    boxes = _BOXED.findall(text)
    if len(boxes) >= 2:
        pair = [p.strip() for p in boxes[-2].split(",")]
        if len(pair) == 2:
            j = _valid(pair[0], pair[1], boxes[-1].strip())
            if j is not None:
                return j
    return tie(tie_score)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def length_weights(lengths: Sequence[int]) -> list[float]:
    """Centred w~_i: 1 for the shortest before centring, 0 for the longest; all 0 if all equal."""
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    w = [1.0 - (n - lo) / (hi - lo) for n in lengths]
    mean = sum(w) / len(w)
    return [x - mean for x in w]


def _shortest_nonempty(lengths: Sequence[int]) -> int | None:
    best = None
    for i, n in enumerate(lengths):
        if n > 0 and (best is None or n < lengths[best]):
            best = i
    return best


def aggregate(n: int, pairs: Sequence[tuple[int, int]], judgements: Sequence[Judgement],
              think_lengths: Sequence[int], answer_lengths: Sequence[int],
              params: AggregateParams = AggregateParams()) -> list[RolloutScore]:
    """One `RolloutScore` per rollout of a group of `n` (see module docstring for the rules)."""
    if n < 2:
        raise ValueError("a GenRM group needs at least 2 rollouts")
    if len(pairs) != len(judgements) or len(think_lengths) != n or len(answer_lengths) != n:
        raise ValueError("pairs/judgements/lengths do not match the group")
    total, count = [0.0] * n, [0] * n
    tiebreaks, unparsed = [0] * n, [0] * n
    for (i, j), jd in zip(pairs, judgements):
        s_i, s_j = jd.score_1, jd.score_2
        if s_i == s_j:
            s_i += RANKING_MIDPOINT - jd.ranking
            s_j += jd.ranking - RANKING_MIDPOINT
            tiebreaks[i] += 1
            tiebreaks[j] += 1
        if not jd.parsed:
            unparsed[i] += 1
            unparsed[j] += 1
        total[i] += s_i
        total[j] += s_j
        count[i] += 1
        count[j] += 1
    if min(count) == 0:
        raise ValueError("every rollout of the group must be in at least one comparison")
    base = [t / c for t, c in zip(total, count)]
    w_think, w_answer = length_weights(think_lengths), length_weights(answer_lengths)
    tau = percentile(base, params.concise_percentile)
    bonus = [0.0] * n
    for lengths, beta in ((think_lengths, params.concise_beta_think), (answer_lengths, params.concise_beta_answer)):
        k = _shortest_nonempty(lengths)
        if k is not None and base[k] >= tau:
            bonus[k] += beta
    out = []
    for i in range(n):
        ta, aa = params.length_lambda_think * w_think[i], params.length_lambda_answer * w_answer[i]
        out.append(RolloutScore(base[i] + ta + aa + bonus[i], base[i], ta, aa, bonus[i], count[i],
                                tiebreaks[i], unparsed[i]))
    return out
