"""Point-wise reward-model scoring (C1 §4.2-4.3): a served endpoint or a local checkpoint.

`RewardModelScorer.score(conversations)` returns one float per chat conversation (a list of
`{"role", "content"}` messages ending with the assistant answer). The RM's *own* chat template
renders it: the local backend applies the checkpoint's tokenizer template, a served backend
sends messages and the server applies its model's template.

Backends (picked by `make_rm_scorer` from a `ServedModelConfig`):
  * `HttpRewardModel`, endpoint URL:
      - a path ending in `/pooling`: vLLM's OpenAI-compatible pooling API (`vllm serve <rm>`),
        one request per conversation, score = last value of the returned pooled data;
      - anything else: the simple JSON API `POST {"model", "conversations": [[msg, ...]]}` ->
        `{"scores": [float]}` (served by `python -m cascade.rewards.reward_model.server`).
  * `LocalRewardModel`, checkpoint directory — the format the RM training recipe exports:
      - an HF `*ForSequenceClassification` directory with `num_labels == 1`, or
      - an HF causal-LM (or base) directory plus `reward_head.safetensors` holding `weight`
        [1, hidden] (and optional `bias` [1]): score = head(final hidden state of the last
        token), the paper's "linear head on the last hidden layer".
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cascade.config.schema.rl import ServedModelConfig

log = logging.getLogger(__name__)

Message = dict[str, str]
HEAD_FILE = "reward_head.safetensors"


class RewardModelScorer(Protocol):
    def score(self, conversations: Sequence[list[Message]]) -> list[float]: ...

    def close(self) -> None: ...


def _post_json(url: str, body: dict[str, Any], timeout_s: float, retries: int) -> Any:
    data = json.dumps(body).encode()
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            if attempt == retries:
                raise RuntimeError(f"reward model endpoint {url} failed: {e}") from e
            time.sleep(min(2.0**attempt, 10.0))
    raise AssertionError("unreachable")


def _last_value(data: Any) -> float:
    while isinstance(data, list):
        if not data:
            raise ValueError("empty pooled output")
        data = data[-1]
    return float(data)


class HttpRewardModel:
    """A reward model behind HTTP (see module docstring for the two APIs)."""

    def __init__(self, endpoint: str, model: str = "", timeout_s: float = 60.0,
                 batch_size: int = 32, retries: int = 2) -> None:
        self.endpoint, self.model = endpoint, model
        self.timeout_s, self.batch_size, self.retries = timeout_s, batch_size, retries
        self.pooling = endpoint.rstrip("/").endswith("/pooling")

    def score(self, conversations: Sequence[list[Message]]) -> list[float]:
        out: list[float] = []
        if self.pooling:
            for conv in conversations:
                body = {"model": self.model, "messages": conv} if self.model else {"messages": conv}
                resp = _post_json(self.endpoint, body, self.timeout_s, self.retries)
                out.append(_last_value(resp["data"][0]["data"]))
            return out
        for i in range(0, len(conversations), self.batch_size):
            chunk = list(conversations[i : i + self.batch_size])
            resp = _post_json(self.endpoint, {"model": self.model, "conversations": chunk},
                              self.timeout_s, self.retries)
            scores = resp.get("scores")
            if not isinstance(scores, list) or len(scores) != len(chunk):
                raise RuntimeError(f"reward model endpoint returned {str(resp)[:200]!r}")
            out.extend(float(s) for s in scores)
        return out

    def close(self) -> None:
        pass


class LocalRewardModel:
    """A reward model loaded in process with transformers (CPU or one GPU)."""

    def __init__(self, path: str | Path, device: str | None = None, batch_size: int = 8,
                 max_length: int = 16384, dtype: Any = None) -> None:
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size, self.max_length = batch_size, max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{self.path}: the reward model's tokenizer has no chat template")
        self.tokenizer.truncation_side = "left"  # keep the end of long answers
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        kw = {"dtype": dtype} if dtype is not None else {}
        head_file = self.path / HEAD_FILE
        if head_file.exists():
            from safetensors.torch import load_file

            self.model = AutoModel.from_pretrained(self.path, **kw)
            head = load_file(str(head_file))
            w = head["weight"]
            self.head = torch.nn.Linear(w.shape[1], 1, bias="bias" in head)
            self.head.load_state_dict(head)
            self.head.to(self.device, dtype=self.model.dtype).eval()
        else:
            self.model = AutoModelForSequenceClassification.from_pretrained(self.path, **kw)
            if self.model.config.num_labels != 1:
                raise ValueError(f"{self.path}: expected a 1-label sequence classifier "
                                 f"(got num_labels={self.model.config.num_labels}) or {HEAD_FILE}")
            if self.model.config.pad_token_id is None:
                self.model.config.pad_token_id = self.tokenizer.pad_token_id
            self.head = None
        self.model.to(self.device).eval()

    def render(self, conversation: list[Message]) -> str:
        """The RM's own chat template applied to a finished conversation."""
        return self.tokenizer.apply_chat_template(conversation, tokenize=False)

    def score(self, conversations: Sequence[list[Message]]) -> list[float]:
        torch = self.torch
        out: list[float] = []
        for i in range(0, len(conversations), self.batch_size):
            texts = [self.render(c) for c in conversations[i : i + self.batch_size]]
            self.tokenizer.padding_side = "right"
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                if self.head is None:
                    logits = self.model(**enc).logits[:, 0]
                else:
                    hidden = self.model(**enc).last_hidden_state
                    last = enc["attention_mask"].sum(dim=1) - 1
                    h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
                    logits = self.head(h)[:, 0]
            out.extend(float(x) for x in logits.float().cpu())
        return out

    def close(self) -> None:
        pass


def make_rm_scorer(cfg: ServedModelConfig, timeout_s: float = 60.0) -> RewardModelScorer:
    """The backend a stage config asks for: `endpoint` (HTTP) wins over `checkpoint` (local)."""
    if cfg.endpoint:
        return HttpRewardModel(cfg.endpoint, cfg.name, timeout_s=timeout_s)
    if cfg.checkpoint:
        return LocalRewardModel(cfg.checkpoint)
    raise ValueError("reward_model needs an `endpoint` or a `checkpoint`")
