"""ArenaHard judging against a real HTTP server on 127.0.0.1 speaking the OpenAI chat API.

The stand-in judge prefers the answer that contains "GOOD" (strongly) and declares a tie
otherwise, so the expected win rates follow from the protocol: two games with swapped positions,
strong verdicts weighted 3."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evals.scoring import JudgeConfig, ScorerUnavailable, ScoringConfig, ScoringContext, build_scorer
from evals.scoring.judge import SYSTEM_PROMPT, combine, parse_verdict
from evals.spec import EvalItem

ANSWER = re.compile(r"<\|The Start of Assistant (A|B)'s Answer\|>\n(.*?)\n<\|The End of Assistant \1's Answer\|>", re.S)


class FakeJudge(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        answers = dict(ANSWER.findall(body["messages"][1]["content"]))
        a_good, b_good = "GOOD" in answers["A"], "GOOD" in answers["B"]
        verdict = "A>>B" if a_good and not b_good else "B>>A" if b_good and not a_good else "A=B"
        if "NOVERDICT" in answers["A"] + answers["B"]:
            verdict_text = "I cannot decide."
        else:
            verdict_text = f"My own answer first... My final verdict is [[{verdict}]]."
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": verdict_text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeJudge.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _item(i: int, baseline: str) -> EvalItem:
    return EvalItem(f"q{i}", [{"role": "user", "content": f"question {i}"}], {"question": f"question {i}", "baseline": baseline})


def test_pairwise_judge_over_http(judge_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    cfg = ScoringConfig(judge=JudgeConfig(endpoint=judge_url, model="judge-x", api_key_env="TEST_JUDGE_KEY",
                                          max_workers=2, retries=1))
    scorer = build_scorer("judge", ScoringContext(cfg, tmp_path))
    items = [_item(0, "plain"), _item(1, "GOOD baseline"), _item(2, "plain"), _item(3, "plain")]
    responses = ["<think>GOOD thoughts are hidden</think>GOOD answer", "my answer", "plain", "NOVERDICT"]
    results = scorer.score(items, responses)
    assert [r.score for r in results] == [1.0, 0.0, 0.5, 0.5]
    assert results[0].info["verdicts"] == ["B>>A", "A>>B"]  # we are B in game 1, A in game 2
    assert results[3].info["error"] == "no verdict from the judge"
    assert len(FakeJudge.requests) == 8
    req = FakeJudge.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "judge-x" and req["body"]["temperature"] == 0.0
    assert req["body"]["messages"][0]["content"] == SYSTEM_PROMPT
    judged = [r["body"]["messages"][1]["content"] for r in FakeJudge.requests]
    assert not any("hidden" in text for text in judged)  # the thinking part never reaches the judge


def test_unreachable_judge_is_an_error_not_a_crash(tmp_path):
    cfg = ScoringConfig(judge=JudgeConfig(endpoint="http://127.0.0.1:9/v1", retries=1, timeout_s=2))
    (r,) = build_scorer("judge", ScoringContext(cfg, tmp_path)).score([_item(0, "b")], ["a"])
    assert "error" in r.info and r.score == 0.5


def test_no_endpoint_makes_the_benchmark_unavailable(tmp_path):
    with pytest.raises(ScorerUnavailable, match="scoring.judge.endpoint"):
        build_scorer("judge", ScoringContext(ScoringConfig(), tmp_path))


def test_verdict_parsing_and_weighting():
    assert parse_verdict("blah [[A>B]] and again [[A>B]]") == "A>B"
    assert parse_verdict("[[A>B]] ... actually [[B>A]]") is None  # ambiguous
    assert parse_verdict("no label") is None
    assert combine("A>>B", "A>B") == (pytest.approx(0.25), {"verdicts": ["A>>B", "A>B"]})  # (0*3 + 1*1)/4
    assert combine(None, "A=B")[0] == 0.5
    assert combine(None, None)[0] is None
