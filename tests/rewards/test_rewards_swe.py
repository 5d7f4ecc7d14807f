"""SWE reward: every branch of Eq. 2 on real git diffs (made with `git diff` in a temp repo)."""

from __future__ import annotations

import json
import math
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.rewards.swe.judge import PREFILL, JudgeRequest, LocalJudge, OpenAIJudge, yes_probability
from cascade.rewards.swe.patch import apply_unified_diff
from cascade.rewards.swe.reward import SWEReward

STATS = '''"""Small statistics helpers."""


def mean(xs):
    return sum(xs) / len(xs)


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2]


def variance(xs):
    m = mean(xs)
    return sum((x - m) ** 2 for x in xs) / len(xs)


def describe(xs):
    return {"mean": mean(xs), "median": median(xs), "variance": variance(xs)}
'''
UTIL = '''def clamp(x, lo, hi):
    return max(lo, min(x, hi))
'''
FIXED_STATS = STATS.replace(
    "    s = sorted(xs)\n    return s[len(s) // 2]\n",
    "    s = sorted(xs)\n    n = len(s)\n    if n % 2 == 0:\n        return (s[n // 2 - 1] + s[n // 2]) / 2\n    return s[n // 2]\n",
).replace("/ len(xs)\n\n\ndef describe", "/ (len(xs) - 1)\n\n\ndef describe")
FIXED_UTIL = UTIL.replace("def clamp(x, lo, hi):\n", "def clamp(x, lo, hi):\n    if lo > hi:\n        raise ValueError(\"lo > hi\")\n")
ISSUE = "median() is wrong for even-length input, variance() should be the sample variance, clamp() accepts lo > hi."


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repo with the original files; the golden patch is `git diff` of the fix."""
    d = tmp_path_factory.mktemp("repo")
    (d / "pkg").mkdir()
    (d / "pkg" / "stats.py").write_text(STATS)
    (d / "pkg" / "util.py").write_text(UTIL)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(d)]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "init"], check=True)
    (d / "pkg" / "stats.py").write_text(FIXED_STATS)
    (d / "pkg" / "util.py").write_text(FIXED_UTIL)
    (d / "pkg" / "new.py").write_text("VERSION = 2\n")
    subprocess.run(git + ["add", "."], check=True)
    golden = subprocess.run(git + ["diff", "--cached"], check=True, capture_output=True, text=True).stdout
    return {"golden_patch": golden, "original": {"pkg/stats.py": STATS, "pkg/util.py": UTIL}}


def edit(path, search, replace):
    return f"```python\n### {path}\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```\n"


def answer(*edits):
    return "<think>Let me look at the functions.</think>\n<solution>\n" + "".join(edits) + "</solution>"


GOLDEN_EDITS = [
    edit("pkg/stats.py", "    s = sorted(xs)\n    return s[len(s) // 2]",
         "    s = sorted(xs)\n    n = len(s)\n    if n % 2 == 0:\n        return (s[n // 2 - 1] + s[n // 2]) / 2\n    return s[n // 2]"),
    edit("pkg/stats.py", "    return sum((x - m) ** 2 for x in xs) / len(xs)",
         "    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)"),
    edit("pkg/util.py", "def clamp(x, lo, hi):", "def clamp(x, lo, hi):\n    if lo > hi:\n        raise ValueError(\"lo > hi\")"),
    edit("pkg/new.py", "", "VERSION = 2"),
]


def row(repo, response):
    return {**repo, "response": response, "prompt": f"Fix this issue:\n{ISSUE}"}


class FakeJudge:
    def __init__(self, p=0.7):
        self.p, self.requests = p, []

    def p_yes(self, requests):
        self.requests.extend(requests)
        return [self.p] * len(requests)

    def close(self):
        pass


def score(rows, judge=None):
    return SWEReward(RewardConfig(domain=RewardDomain.SWE), judge or FakeJudge()).score(rows)


def test_golden_patch_applies_to_the_original(repo):
    new = apply_unified_diff(repo["original"], repo["golden_patch"])
    assert new == {"pkg/stats.py": FIXED_STATS, "pkg/util.py": FIXED_UTIL, "pkg/new.py": "VERSION = 2\n"}


def test_lexical_match_scores_one(repo):
    judge = FakeJudge()
    res = score([row(repo, answer(*GOLDEN_EDITS))], judge)[0]
    assert res.reward == 1.0 and res.info["branch"] == "lexical_match" and res.info["s_lex"] == 1.0
    assert judge.requests == []  # an exact match never reaches the judge


def test_same_change_with_different_edit_blocks_still_matches(repo):
    whole = edit("pkg/stats.py", STATS.rstrip("\n"), FIXED_STATS.rstrip("\n"))  # one big block
    res = score([row(repo, answer(whole, *GOLDEN_EDITS[2:]))])[0]
    assert res.reward == 1.0


def test_no_change_scores_zero(repo):
    same = edit("pkg/stats.py", "def mean(xs):", "def mean(xs):")
    res = score([row(repo, answer(same))])[0]
    assert res.reward == 0.0 and res.info["branch"] == "no_change"


@pytest.mark.parametrize("response", [
    "I would change the median function.",  # no edits at all
    answer(edit("pkg/stats.py", "def median(values):", "def median(xs):")),  # SEARCH not in the file
    answer(edit("pkg/missing.py", "x = 1", "x = 2")),  # a file that is not there
    "<think>I was going to write " + answer(*GOLDEN_EDITS)[:40],  # thinking never finished
])
def test_unparsable_edits_score_minus_one(repo, response):
    res = score([row(repo, response)])[0]
    assert res.reward == -1.0 and res.info["branch"] == "unparsable"


def test_other_changes_go_to_the_judge(repo):
    partial = answer(edit("pkg/stats.py", "    s = sorted(xs)\n    return s[len(s) // 2]",
                          "    import statistics\n    return statistics.median(xs)"))
    judge = FakeJudge(0.83)
    rows = [row(repo, partial), row(repo, answer(*GOLDEN_EDITS)), row(repo, "no edits")]
    res = score(rows, judge)
    assert [r.reward for r in res] == [0.83, 1.0, -1.0]
    assert res[0].info["branch"] == "judge" and 0.0 < res[0].info["s_lex"] < 1.0
    (req,) = judge.requests  # only the row that needs it
    assert ISSUE in req.request and "+    return statistics.median(xs)" in req.model_patch
    assert req.golden_patch.count("+++ b/") == 3 and "--- a/pkg/stats.py" in req.model_patch


def test_judge_failure_marks_only_its_rows(repo):
    class Down(FakeJudge):
        def p_yes(self, requests):
            raise RuntimeError("connection refused")

    other = answer(edit("pkg/util.py", "    return max(lo, min(x, hi))", "    return min(hi, max(x, lo))"))
    res = score([row(repo, other), row(repo, answer(*GOLDEN_EDITS))], Down())
    assert res[0].reward == 0.0 and "judge failed" in res[0].info["error"]
    assert res[1].reward == 1.0


def test_bad_rows(repo):
    res = score([{"response": "x"}, {**row(repo, "x"), "golden_patch": "not a diff"},
                 {**row(repo, "x"), "original": 5}])
    assert all("error" in r.info and r.reward == 0.0 for r in res)


def test_openai_compatible_judge_reads_p_yes_from_logprobs(http_server):
    seen = []

    class Chat(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            top = [{"token": "YES", "logprob": -0.2}, {"token": "NO", "logprob": -1.9}, {"token": "<", "logprob": -5}]
            out = {"choices": [{"logprobs": {"content": [{"token": "YES", "logprob": -0.2, "top_logprobs": top}]}}]}
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    url = http_server(ThreadingHTTPServer(("127.0.0.1", 0), Chat))
    judge = OpenAIJudge(url + "/v1", model="kimi-dev")
    p = judge.p_yes([JudgeRequest("issue text", "golden diff", "model diff")])[0]
    judge.close()
    assert p == pytest.approx(math.exp(-0.2))  # P(YES) itself (C1 §4.7.2), not P(YES)/(P(YES)+P(NO))
    path, body = seen[0]
    assert path == "/v1/chat/completions" and body["model"] == "kimi-dev" and body["max_tokens"] == 1
    assert body["messages"][-1] == {"role": "assistant", "content": PREFILL}
    assert body["continue_final_message"] is True and body["logprobs"] is True
    assert "<judgement>YES</judgement>" in body["messages"][0]["content"]
    assert all(s in body["messages"][1]["content"] for s in ("issue text", "golden diff", "model diff"))


def test_local_judge_next_token_probability(tiny_models):
    import torch

    judge = LocalJudge(tiny_models["causal"])
    req = JudgeRequest("issue", "--- a/x\n+++ b/x\n", "--- a/x\n+++ b/x\n")
    p = judge.p_yes([req])[0]
    enc = judge.tokenizer(judge.prompt_text(req), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        probs = torch.softmax(judge.model(**enc).logits[0, -1].float(), -1)
    yes_ids = {judge.tokenizer.encode(w, add_special_tokens=False)[0] for w in ("YES", " YES")}
    yes = sum(float(probs[i]) for i in yes_ids)
    assert judge.prompt_text(req).endswith(PREFILL)
    assert 0.0 < p < 1.0 and p == pytest.approx(yes, rel=1e-4)  # P(YES) itself, not renormalised


def test_p_yes_is_the_yes_tokens_probability_not_renormalised_against_no():
    # C1 §4.7.2: the semantic reward is P("YES"); mass on other tokens lowers it
    assert yes_probability({"YES": 0.3, "NO": 0.1, "<": 0.6}) == pytest.approx(0.3)
    assert yes_probability({" YES": 0.2, "YES": 0.1, "Yes": 0.5}) == pytest.approx(0.3)
    assert yes_probability({"NO": 0.9}) == 0.0
