"""Reward-model scoring: local checkpoints (tiny random models built from a config, no hub),
the HTTP APIs against local servers on 127.0.0.1, the RLHF rules and the IF-RL combined reward."""

from __future__ import annotations

import json
import math
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cascade.config.schema.rl import CodeSwitchPenalty, RewardConfig, RewardDomain, ServedModelConfig
from cascade.rewards.registry import build_scorer
from cascade.rewards.reward_model.domains import InstructionRMReward, RewardModelReward, combine_if_rm
from cascade.rewards.reward_model.scorer import HEAD_FILE, HttpRewardModel, LocalRewardModel
from cascade.rewards.reward_model.server import make_server

torch = pytest.importorskip("torch")

CONVS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"},
     {"role": "assistant", "content": "Hi there! How can I help you today? I am happy to help."}],
]


def test_sequence_classifier_checkpoint_scores(tiny_models):
    rm = LocalRewardModel(tiny_models["seq_cls"], batch_size=2)
    scores = rm.score(CONVS)
    one_by_one = [rm.score([c])[0] for c in CONVS]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["seq_cls"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["seq_cls"]).eval()
    manual = []
    for c in CONVS:
        enc = tok(tok.apply_chat_template(c, tokenize=False), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            manual.append(float(model(**enc).logits[0, 0]))
    assert scores == pytest.approx(manual, abs=1e-5)
    assert one_by_one == pytest.approx(scores, abs=1e-5)  # padding does not change a score
    assert scores[0] != scores[1]


def test_causal_lm_plus_linear_head_checkpoint(tiny_models):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    path = tiny_models["lm_head"]
    rm = LocalRewardModel(path)
    assert rm.head is not None
    tok = AutoTokenizer.from_pretrained(path)
    base = AutoModel.from_pretrained(path).eval()
    head = load_file(str(path / HEAD_FILE))
    manual = []
    for c in CONVS:
        enc = tok(tok.apply_chat_template(c, tokenize=False), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            h = base(**enc).last_hidden_state[0, -1]
        manual.append(float(h @ head["weight"][0] + head["bias"][0]))
    assert rm.score(CONVS) == pytest.approx(manual, abs=1e-5)


def test_thinking_mode_scores_only_text_after_think(tiny_models):
    scorer = RewardModelReward(RewardConfig(domain=RewardDomain.REWARD_MODEL),
                               LocalRewardModel(tiny_models["seq_cls"]))
    rows = [
        {"prompt": "Name a colour. /think", "response": "<think>Red? Blue? Let me pick.</think>Blue."},
        {"prompt": "Name a colour.", "response": "Blue."},
        {"prompt": "Name a colour. /think", "response": "<think>Red? Blue? Let me pick one and"},
        {"prompt": [{"role": "user", "content": "Name a colour. /no_think"}], "response": "Blue."},
        {"response": "no prompt"},
    ]
    res = scorer.score(rows)
    assert res[0].reward == pytest.approx(res[1].reward) == pytest.approx(res[3].reward)
    assert res[2].reward != pytest.approx(res[0].reward)  # the unfinished response is scored whole
    assert res[0].info["scored_whole_response"] is False and res[2].info["scored_whole_response"] is True
    assert "prompt" in res[4].info["error"]


def test_http_score_api_serves_the_local_model(tiny_models, http_server):
    local = LocalRewardModel(tiny_models["seq_cls"])
    url = http_server(make_server(local))
    remote = HttpRewardModel(url + "/score", batch_size=1)
    assert remote.score(CONVS) == pytest.approx(local.score(CONVS), abs=1e-6)


def test_vllm_pooling_api_client(http_server):
    seen = []

    class Pooling(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            score = float(len(body["messages"][-1]["content"]))
            data = json.dumps({"data": [{"index": 0, "object": "pooling", "data": [[0.0], [score]]}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    url = http_server(ThreadingHTTPServer(("127.0.0.1", 0), Pooling))
    rm = HttpRewardModel(url + "/pooling", model="my-rm")
    assert rm.score(CONVS) == [6.0, float(len(CONVS[1][-1]["content"]))]
    assert seen[0][0] == "/pooling" and seen[0][1] == {"model": "my-rm", "messages": CONVS[0]}


def test_unreachable_endpoint_marks_rows_not_the_run():
    rm = HttpRewardModel("http://127.0.0.1:9/score", timeout_s=2, retries=0)
    res = RewardModelReward(RewardConfig(domain=RewardDomain.REWARD_MODEL), rm).score(
        [{"prompt": "q", "response": "a"}])
    assert res[0].reward == 0.0 and "reward model failed" in res[0].info["error"]


def test_if_rl_combined_reward_rule():
    r_if = [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    rm = [3.0, 1.0, 9.0, 5.0, 5.0, -2.0]
    groups = ["a", "a", "a", "b", "b", "c"]
    out = combine_if_rm(r_if, rm, groups)
    mean, std = sum(rm[:3]) / 3, math.sqrt(sum((x - sum(rm[:3]) / 3) ** 2 for x in rm[:3]) / 3)
    assert out[0] == pytest.approx(1 + 1 / (1 + math.exp(-(3.0 - mean) / std)), rel=1e-5)
    assert out[2] == 0.0  # R_IF = 0 -> 0 whatever the RM says
    assert out[3] == out[4] == out[5] == pytest.approx(1.5)  # equal scores / singleton group: z = 0
    assert all(1.0 < x < 2.0 for x, r in zip(out, r_if) if r == 1.0)


def test_instruction_rm_domain_composes_both(tiny_models):
    cfg = RewardConfig(domain=RewardDomain.INSTRUCTION_RM)
    scorer = InstructionRMReward(cfg, LocalRewardModel(tiny_models["seq_cls"]))
    try:
        base = {"prompt": "Answer without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
        rows = [{**base, "response": "<think>ok</think>Yes indeed."},
                {**base, "response": "<think>ok</think>Yes, indeed."},
                {**base, "response": "<think>ok</think>Absolutely right."}]
        res = scorer.score(rows)
    finally:
        scorer.close()
    assert res[1].reward == 0.0 and res[1].info["r_if"] == 0.0
    assert 1.0 < res[0].reward < 2.0 and 1.0 < res[2].reward < 2.0
    assert res[0].reward != res[2].reward and "rm_score" in res[0].info


def test_registry_builds_rm_scorer_with_batch_min_penalty(tiny_models):
    cfg = RewardConfig(domain=RewardDomain.REWARD_MODEL, code_switch=CodeSwitchPenalty.BATCH_MIN_MINUS_TEN,
                       reward_model=ServedModelConfig(checkpoint=str(tiny_models["seq_cls"])))
    scorer = build_scorer(cfg)
    rows = [{"prompt": "Hello?", "response": "Hello!"}, {"prompt": "Hello?", "response": "你好！"},
            {"prompt": "Hello?", "response": "Hi."}]
    res = scorer.score(rows)
    scorer.close()
    clean = [res[0].info["rm_score"], res[1].info["reward_before_code_switch"], res[2].info["rm_score"]]
    assert res[1].reward == pytest.approx(min(clean) - 10.0)
    assert res[1].info["code_switch"] is True and res[0].info["code_switch"] is False
