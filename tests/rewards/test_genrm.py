"""The `genrm` domain (C2 RLHF): judgement parsing, the per-rollout aggregation checked against
hand arithmetic, the YAML section, and the scorer against a real local HTTP GenRM."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cascade.config import ConfigError, load_stage_config
from cascade.config.schema.rl import GenRMConfig, RewardConfig, RewardDomain
from cascade.rewards.cli import main
from cascade.rewards.genrm.aggregate import (
    AggregateParams,
    Judgement,
    aggregate,
    all_pairs,
    length_weights,
    parse_judgement,
    percentile,
    tie,
)
from cascade.rewards.genrm.reward import GenRMReward, HttpGenRM, lengths
from cascade.rewards.registry import build_scorer, registered_domains

# ---------------------------------------------------------------- parsing


def test_parse_json_with_prose_and_reasoning():
    text = 'I compare {curly} things. Draft {"score_1": 1, "score_2": 1, "ranking": 6}\n' \
           'Final:\n```json\n{\n  "score_1": 4,\n  "score_2": 2.5,\n  "ranking": 2\n}\n```'
    assert parse_judgement(text) == Judgement(4.0, 2.5, 2.0)


def test_parse_boxed_form():
    text = ("[The Begin of Individual Scores]\n\\boxed{5, 3}\n[The End of Individual Scores]\n"
            "[The Begin of Ranking Score]\n\\boxed{2}\n[The End of Ranking Score]")
    assert parse_judgement(text) == Judgement(5.0, 3.0, 2.0)


@pytest.mark.parametrize("text", [
    "", "no scores at all", '{"score_1": 9, "score_2": 3, "ranking": 2}',  # score out of 1..5
    '{"score_1": 4, "score_2": 3, "ranking": 0}',  # ranking out of 1..6
    '{"score_1": "NaN", "score_2": 3, "ranking": 2}', '{"score_1": 4, "ranking": 2}',
    '{"score_1": 4, "score_2": 3, "ranking": 2', "\\boxed{4}", None,
])
def test_unparsable_is_a_tie(text):
    j = parse_judgement(text, tie_score=3.0)
    assert (j.score_1, j.score_2, j.ranking, j.parsed) == (3.0, 3.0, 3.5, False)


def test_all_pairs_and_helpers():
    assert all_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert len(all_pairs(16)) == 120  # the paper's 16 rollouts -> 120 pairs
    assert percentile([1, 2, 3, 4, 5], 80) == pytest.approx(4.2)  # pos 0.8*4 = 3.2 -> 4 + 0.2*1
    assert length_weights([7, 7, 7]) == [0.0, 0.0, 0.0]
    # w = 1, 0.5, 0 for 10, 20, 30; mean 0.5 -> 0.5, 0, -0.5
    assert length_weights([10, 20, 30]) == pytest.approx([0.5, 0.0, -0.5])


def test_lengths_split_thinking_and_answer():
    assert lengths("<think> abc </think>  hello ") == (3, 5)
    assert lengths("plain answer") == (0, 12)  # no thinking
    assert lengths("<think>never closed") == (12, 19)  # judged as a whole: the answer is everything


# ---------------------------------------------------------------- aggregation by hand


def test_aggregate_four_rollouts_by_hand():
    pairs = all_pairs(4)  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    judgements = [
        Judgement(5, 3, 2),  # (0,1): no tie          -> r0 5,   r1 3
        Judgement(4, 4, 2),  # (0,2): tie, r=2        -> r0 4+(3.5-2)=5.5, r2 4+(2-3.5)=2.5
        tie(3.0),            # (0,3): unparsable tie  -> r0 3+(3.5-3.5)=3, r3 3
        Judgement(2, 5, 6),  # (1,2): no tie          -> r1 2,   r2 5
        Judgement(3, 3, 5),  # (1,3): tie, r=5        -> r1 3+(3.5-5)=1.5, r3 3+(5-3.5)=4.5
        Judgement(5, 4, 1),  # (2,3): no tie          -> r2 5,   r3 4
    ]
    # R_base: r0 (5+5.5+3)/3 = 4.5; r1 (3+2+1.5)/3 = 6.5/3; r2 (2.5+5+5)/3 = 12.5/3; r3 (3+4.5+4)/3 = 11.5/3
    base = [4.5, 6.5 / 3, 12.5 / 3, 11.5 / 3]
    # τ = 80th percentile of sorted [2.1667, 3.8333, 4.1667, 4.5]: pos 0.8*3 = 2.4
    #   -> 12.5/3 + 0.4*(4.5 - 12.5/3) = 4.1667 + 0.4*0.3333 = 4.3
    think = [200, 100, 400, 600]
    # w_think = 1-(l-100)/500 = [0.8, 1, 0.4, 0]; mean 0.55; w~ = [0.25, 0.45, -0.15, -0.55]; ×0.5:
    think_adj = [0.125, 0.225, -0.075, -0.275]
    answer = [50, 150, 250, 50]
    # w_answer = 1-(l-50)/200 = [1, 0.5, 0, 1]; mean 0.625; w~ = [0.375, -0.125, -0.625, 0.375]; ×0.5:
    answer_adj = [0.1875, -0.0625, -0.3125, 0.1875]
    # conciseness: shortest thinking is r1 but R_base 2.1667 < 4.3 -> no bonus (the quality gate);
    # shortest answer: r0 and r3 (50) -> the first, r0, R_base 4.5 >= 4.3 -> +0.5
    bonus = [0.5, 0.0, 0.0, 0.0]
    # R: r0 4.5+0.125+0.1875+0.5 = 5.3125; r1 2.16667+0.225-0.0625 = 2.32917;
    #    r2 4.16667-0.075-0.3125 = 3.77917; r3 3.83333-0.275+0.1875 = 3.74583
    expected = [5.3125, 6.5 / 3 + 0.1625, 12.5 / 3 - 0.3875, 11.5 / 3 - 0.0875]
    out = aggregate(4, pairs, judgements, think, answer, AggregateParams())
    assert [s.base for s in out] == pytest.approx(base)
    assert [s.think_adjust for s in out] == pytest.approx(think_adj)
    assert [s.answer_adjust for s in out] == pytest.approx(answer_adj)
    assert [s.concise_bonus for s in out] == bonus
    assert [s.reward for s in out] == pytest.approx(expected)
    assert [s.reward for s in out] == pytest.approx([5.3125, 2.329167, 3.779167, 3.745833], abs=1e-6)
    assert [s.comparisons for s in out] == [3, 3, 3, 3]
    assert [s.tiebreaks for s in out] == [2, 1, 1, 2]  # (0,2) (0,3) (1,3)
    assert [s.unparsed for s in out] == [1, 0, 0, 1]


def test_aggregate_three_rollouts_equal_lengths_gate_at_threshold():
    # (0,1): 3,3 r=4 -> r0 3-0.5 = 2.5, r1 3.5; (0,2): 5,1 -> r0 5, r2 1; (1,2): 4,2 -> r1 4, r2 2
    out = aggregate(3, all_pairs(3), [Judgement(3, 3, 4), Judgement(5, 1, 1), Judgement(4, 2, 2)],
                    [10, 10, 10], [5, 5, 5])
    # R_base: r0 (2.5+5)/2 = 3.75, r1 (3.5+4)/2 = 3.75, r2 (1+2)/2 = 1.5; equal lengths -> w~ = 0
    # τ: sorted [1.5, 3.75, 3.75], pos 0.8*2 = 1.6 -> 3.75; shortest thinking and answer: r0 (first
    # of equals), 3.75 >= 3.75 -> +0.5 + 0.5
    assert [s.reward for s in out] == pytest.approx([4.75, 3.75, 1.5])
    assert [s.concise_bonus for s in out] == [1.0, 0.0, 0.0]


def test_aggregate_constants_are_parameters():
    j = [Judgement(5, 1, 1)]  # r0 5, r1 1
    plain = AggregateParams(0.0, 0.0, 0.0, 0.0, 80.0)
    assert [s.reward for s in aggregate(2, [(0, 1)], j, [1, 9], [1, 9], plain)] == [5.0, 1.0]
    # λ_think 1: w = [1, 0] -> w~ = [0.5, -0.5]; β_answer 2 to r0 (shortest answer, 5 >= τ = 1+0.8*4 = 4.2)
    p = AggregateParams(1.0, 0.0, 0.0, 2.0, 80.0)
    assert [s.reward for s in aggregate(2, [(0, 1)], j, [1, 9], [1, 9], p)] == [7.5, 0.5]
    with pytest.raises(ValueError):
        aggregate(1, [], [], [1], [1])


def test_empty_text_does_not_win_the_conciseness_bonus():
    # r1 has no thinking (0 chars): the shortest *non-empty* thinking is r0's
    out = aggregate(2, [(0, 1)], [Judgement(4, 4, 3.5)], [5, 0], [3, 3],
                    AggregateParams(0.0, 0.0, 0.5, 0.0, 0.0))
    assert [s.concise_bonus for s in out] == [0.5, 0.0]


# ---------------------------------------------------------------- config


def test_genrm_section_defaults_and_validation():
    g = RewardConfig(domain=RewardDomain.GENRM).genrm
    assert (g.length_lambda_think, g.length_lambda_answer, g.concise_beta_think, g.concise_beta_answer,
            g.concise_percentile) == (0.5, 0.5, 0.5, 0.5, 80.0)
    for bad in ({"concise_percentile": 120.0}, {"length_lambda_think": -1.0}, {"retries": -1},
                {"timeout_s": 0.0}, {"tie_score": 0.0}, {"top_p": 0.0}):
        with pytest.raises(ValueError):
            GenRMConfig(**bad)


MODEL = Path(__file__).resolve().parents[2] / "nemo_configs" / "base" / "model" / "tiny_qwen3.yaml"


def test_genrm_section_from_yaml(tmp_path: Path):
    p = tmp_path / "rlhf.yaml"
    p.write_text(f"defaults: [{MODEL}]\nkind: rl\nreward:\n  domain: genrm\n  genrm:\n    endpoint: http://judge:8000/v1\n"
                 "    name: genrm\n    length_lambda_answer: 0.25\n    concise_percentile: 90\n")
    cfg = load_stage_config(p)
    assert cfg.reward.domain is RewardDomain.GENRM
    assert cfg.reward.genrm.endpoint == "http://judge:8000/v1"
    assert cfg.reward.genrm.length_lambda_answer == 0.25 and cfg.reward.genrm.concise_percentile == 90.0
    assert cfg.reward.genrm.length_lambda_think == 0.5
    p.write_text(f"defaults: [{MODEL}]\nkind: rl\nreward:\n  domain: genrm\n  genrm:\n    concise_bta: 0.1\n")
    with pytest.raises(ConfigError, match="concise_beta"):
        load_stage_config(p)


def test_registered():
    assert RewardDomain.GENRM in registered_domains()
    with pytest.raises(ValueError, match="genrm.endpoint"):
        build_scorer(RewardConfig(domain=RewardDomain.GENRM))


# ---------------------------------------------------------------- a real local GenRM server

def _score_of(text: str) -> float:
    return float(text.split("quality=")[1].split()[0])


def genrm_server(calls: list, delay_s: float = 0.0, reply=None) -> ThreadingHTTPServer:
    """A fake GenRM: scores each answer by its `quality=N` marker, ranking from the difference."""
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                calls.append(body)
            time.sleep(delay_s)
            msgs = body["messages"]
            a, b = msgs[-2]["content"], msgs[-1]["content"]
            if reply is not None:
                content = reply(a, b)
            else:
                s1, s2 = _score_of(a), _score_of(b)
                rank = min(6.0, max(1.0, 3.5 - (s1 - s2))) if s1 != s2 else 3.0  # equal: response 1 slightly better
                content = f'<think>weighing both</think>{{"score_1": {s1}, "score_2": {s2}, "ranking": {rank}}}'
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def log_message(self, *a):
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), H)


def _cfg(url: str, **kw) -> RewardConfig:
    return RewardConfig(domain=RewardDomain.GENRM, genrm=GenRMConfig(endpoint=url, name="genrm", **kw))


def _rows():
    g1 = [{"prompt": "Explain X /think", "group": "a", "response": f"<think>{'t' * n}</think>quality={q} " + "x" * m}
          for n, q, m in ((10, 5, 10), (20, 3, 30), (30, 4, 20))]
    g2 = [{"prompt": [{"role": "user", "content": "Hi"}], "uid": "b", "response": f"quality={q}"} for q in (2, 4)]
    return [g1[0], g2[0], g1[1], {"prompt": "Explain X", "group": "a"}, g1[2], g2[1]]


def test_scorer_against_local_server(http_server):
    calls: list = []
    url = http_server(genrm_server(calls))
    scorer = GenRMReward(_cfg(url))
    try:
        res = scorer.score(_rows())
    finally:
        scorer.close()
    assert len(calls) == 3 + 1  # C(3,2) pairs for group a, C(2,2) for group b
    first = calls[0]
    assert first["model"] == "genrm" and first["temperature"] == 0.6 and first["top_p"] == 0.95
    roles = [m["role"] for m in first["messages"]]
    assert roles[-2:] == ["response_1", "response_2"]
    assert all("<think>" not in m["content"] and "ttt" not in m["content"] for m in first["messages"])
    group_a = [c for c in calls if c["messages"][0]["content"] == "Explain X"]  # the /think flag is stripped
    assert len(group_a) == 3
    assert "error" in res[3].info and res[3].reward == 0.0  # no response: only this row fails
    # group a: qualities 5, 3, 4 -> (0,1) 5/3, (0,2) 5/4, (1,2) 3/4 ; R_base = 5, 3, 4
    # thinking 10, 20, 30 chars -> w~ = 0.5, 0, -0.5 (×0.5 = 0.25, 0, -0.25);
    # answers "quality=5 " + 10x etc. stripped: 20, 40, 30 chars -> w~ = 0.5, -0.5, 0 (×0.5);
    # τ = 80th pct of [3, 4, 5] = 4.6: r0 (5) is shortest in both -> +1.0
    a = [res[0], res[2], res[4]]
    assert [r.info["genrm_base"] for r in a] == pytest.approx([5.0, 3.0, 4.0])
    assert [r.reward for r in a] == pytest.approx([5 + 0.25 + 0.25 + 1.0, 3 + 0 - 0.25, 4 - 0.25 + 0])
    assert a[0].info["group_size"] == 3 and a[0].info["comparisons"] == 2
    # group b: 2 vs 4, equal lengths -> R_base 2, 4; shortest thinking: none (empty); shortest
    # answer: first of equals (r0, base 2 < τ = 2+0.8*2 = 3.6) -> no bonus
    assert [res[1].reward, res[5].reward] == pytest.approx([2.0, 4.0])


def test_unparsable_judgement_is_a_tie_with_info(http_server):
    url = http_server(genrm_server([], reply=lambda a, b: "I cannot decide."))
    scorer = GenRMReward(_cfg(url))
    res = scorer.score([{"prompt": "p", "group": 1, "response": "quality=1 a"},
                        {"prompt": "p", "group": 1, "response": "quality=5 b"}])
    scorer.close()
    assert [r.info["genrm_base"] for r in res] == [3.0, 3.0]
    assert [r.info["unparsed_judgements"] for r in res] == [1, 1]


def test_single_rollout_group_is_an_error(http_server):
    url = http_server(genrm_server([]))
    scorer = GenRMReward(_cfg(url))
    res = scorer.score([{"prompt": "p", "group": 1, "response": "quality=1"}])
    scorer.close()
    assert res[0].reward == 0.0 and "at least 2" in res[0].info["error"]


def test_genrm_down_gives_every_row_an_error():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()  # nothing listens there now
    cfg = _cfg(f"http://127.0.0.1:{port}/v1", retries=1, timeout_s=2.0)
    scorer = GenRMReward(cfg, judge=HttpGenRM(cfg.genrm, backoff_s=0.01))
    rows = [{"prompt": "p", "group": 1, "response": f"quality={q}"} for q in (1, 2, 3)]
    res = scorer.score(rows)
    scorer.close()
    assert [r.reward for r in res] == [0.0, 0.0, 0.0]
    assert all("genrm failed" in r.info["error"] and "2 attempt(s)" in r.info["error"] for r in res)


def test_timeout_is_bounded(http_server):
    calls: list = []
    url = http_server(genrm_server(calls, delay_s=1.5))
    cfg = _cfg(url, retries=1, timeout_s=0.3)
    scorer = GenRMReward(cfg, judge=HttpGenRM(cfg.genrm, backoff_s=0.01))
    t0 = time.monotonic()
    res = scorer.score([{"prompt": "p", "group": 1, "response": f"quality={q}"} for q in (1, 2)])
    elapsed = time.monotonic() - t0
    scorer.close()
    assert all("error" in r.info for r in res)
    assert len(calls) == 2 and elapsed < 1.4  # two attempts of 0.3 s, not the server's 1.5 s


def test_cli(http_server, tmp_path: Path):
    url = http_server(genrm_server([]))
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"prompt": "p", "prompt_id": 7, "response": f"quality={q}"} for q in (1, 5)]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    assert main(["score", "--domain", "genrm", str(src), str(dst)]) == 2  # needs --genrm-endpoint
    assert main(["score", "--domain", "genrm", str(src), str(dst), "--genrm-endpoint", url,
                 "--genrm-model", "genrm", "--genrm-timeout", "30"]) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["reward"] for o in out[:2]] == pytest.approx([1.0, 5.0])
    assert out[0]["prompt_id"] == 7 and out[0]["info"]["comparisons"] == 1
    assert out[2]["reward"] == 0.0 and "invalid JSON" in out[2]["info"]["error"]
