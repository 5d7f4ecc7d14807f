"""The SWE reward's semantic similarity (C1 §4.7): an LLM judge's P("YES").

The judge sees the user's request (issue, files and the SEARCH/REPLACE instructions: the repair
prompt), the golden patch and the model's patch as a unified diff, and is asked for
`<judgement>YES</judgement>` or `<judgement>NO</judgement>`. The assistant turn is pre-filled with
`<judgement>` so the very next token is the verdict; the score is P(YES) at that position, the
probability of the YES token itself (C1 §4.7.2), not renormalised against NO: mass the judge puts
on anything but a clean YES lowers the reward. The paper used Kimi-Dev-72B with the prompt of its App. C.2; the wording below is
ours, built from what the paper says of that prompt (the judge sees the request, the golden patch
and the model's patch, and answers YES/NO in `<judgement>` tags), not the appendix text itself;
pass `system_prompt`/`user_template` to use the original or another.

Backends: `OpenAIJudge` (an OpenAI-compatible chat endpoint returning top logprobs, e.g.
`vllm serve`; the pre-fill uses vLLM's `continue_final_message`) and `LocalJudge` (a causal LM in
process through transformers).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cascade.config.schema.rl import ServedModelConfig

SYSTEM_PROMPT = (
    "You are an expert judge of software patches. Decide whether the assistant successfully "
    "resolved the user's request given a reference golden solution. The request is a GitHub issue "
    "with the relevant code files; the assistant answered with a patch. The golden patch is one "
    "correct fix: the assistant's patch does not have to be identical, but it must fix the issue "
    "with the same effect and must not break other behaviour. "
    "Respond only with <judgement>YES</judgement> or <judgement>NO</judgement>."
)
USER_TEMPLATE = (
    "<user_request>\n{request}\n</user_request>\n\n"
    "<golden_patch>\n{golden_patch}\n</golden_patch>\n\n"
    "<assistant_patch>\n{model_patch}\n</assistant_patch>\n\n"
    "Did the assistant's patch resolve the user's request? "
    "Respond only with <judgement>YES</judgement> or <judgement>NO</judgement>."
)
PREFILL = "<judgement>"


@dataclass
class JudgeRequest:
    request: str  # the repair prompt (issue + files + edit instructions)
    golden_patch: str
    model_patch: str


class Judge(Protocol):
    def p_yes(self, requests: Sequence[JudgeRequest]) -> list[float]: ...

    def close(self) -> None: ...


def judge_messages(req: JudgeRequest, system_prompt: str = SYSTEM_PROMPT,
                   user_template: str = USER_TEMPLATE) -> list[dict[str, str]]:
    """System and user turns of the judge conversation (the pre-fill is added by the backend)."""
    user = user_template.format(request=req.request, golden_patch=req.golden_patch,
                                model_patch=req.model_patch)
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def yes_probability(token_probs: dict[str, float]) -> float:
    """P("YES") from next-token probabilities keyed by token text (the verdict token as the prompt
    spells it, with or without a leading space); a YES outside the listed tokens counts as 0."""
    return min(1.0, sum(p for t, p in token_probs.items() if t.strip() == "YES"))


class OpenAIJudge:
    """Judge behind an OpenAI-compatible `/v1/chat/completions` endpoint (base URL or full URL)."""

    def __init__(self, endpoint: str, model: str, timeout_s: float = 120.0, max_workers: int = 16,
                 top_logprobs: int = 20, system_prompt: str = SYSTEM_PROMPT,
                 user_template: str = USER_TEMPLATE) -> None:
        url = endpoint.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.timeout_s, self.top_logprobs = model, timeout_s, top_logprobs
        self.system_prompt, self.user_template = system_prompt, user_template
        self.pool = ThreadPoolExecutor(max_workers, thread_name_prefix="swe-judge")

    def _one(self, req: JudgeRequest) -> float:
        body = {
            "model": self.model,
            "messages": judge_messages(req, self.system_prompt, self.user_template)
            + [{"role": "assistant", "content": PREFILL}],
            "max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": self.top_logprobs,
            "continue_final_message": True, "add_generation_prompt": False,  # vLLM: pre-fill
        }
        http = urllib.request.Request(self.url, data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(http, timeout=self.timeout_s) as resp:
                out = json.loads(resp.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            raise RuntimeError(f"judge endpoint {self.url} failed: {e}") from e
        top = out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        return yes_probability({t["token"]: math.exp(t["logprob"]) for t in top})

    def p_yes(self, requests: Sequence[JudgeRequest]) -> list[float]:
        return list(self.pool.map(self._one, requests))

    def close(self) -> None:
        self.pool.shutdown(wait=False)


class LocalJudge:
    """Judge running in process: next-token distribution of a causal LM after the pre-fill."""

    def __init__(self, path: str | Path, device: str | None = None, max_length: int = 32768,
                 system_prompt: str = SYSTEM_PROMPT, user_template: str = USER_TEMPLATE) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length
        self.system_prompt, self.user_template = system_prompt, user_template
        self.verdict_ids = self._verdict_ids()

    def _verdict_ids(self) -> list[int]:
        """First token of "YES" and " YES" (one id if the tokenizer spells them alike)."""
        ids: list[int] = []
        for word in ("YES", " YES"):
            toks = self.tokenizer.encode(word, add_special_tokens=False)
            if toks and toks[0] not in ids:
                ids.append(toks[0])
        return ids

    def prompt_text(self, req: JudgeRequest) -> str:
        msgs = judge_messages(req, self.system_prompt, self.user_template)
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + PREFILL

    def p_yes(self, requests: Sequence[JudgeRequest]) -> list[float]:
        torch, out = self.torch, []
        for req in requests:
            enc = self.tokenizer(self.prompt_text(req), return_tensors="pt", truncation=True,
                                 max_length=self.max_length, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                logits = self.model(**enc).logits[0, -1].float()
            probs = torch.softmax(logits, dim=-1)
            out.append(min(1.0, float(probs[self.verdict_ids].sum())))
        return out

    def close(self) -> None:
        pass


def make_judge(cfg: ServedModelConfig, timeout_s: float = 120.0) -> Judge:
    """`endpoint` -> OpenAIJudge (needs `name`, the served model id); `checkpoint` -> LocalJudge."""
    if cfg.endpoint:
        return OpenAIJudge(cfg.endpoint, cfg.name, timeout_s=timeout_s)
    if cfg.checkpoint:
        return LocalJudge(cfg.checkpoint)
    raise ValueError("the SWE judge needs an `endpoint` or a `checkpoint`")

