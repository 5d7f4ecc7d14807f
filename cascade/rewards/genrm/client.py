"""A served chat model used as a judge: one OpenAI-compatible `/chat/completions` call per
judgement, a per-call timeout, a bounded number of retries on transport errors, and a thread
pool so a group's judgements are in flight together. Shared by the two C2 judged domains
(`genrm`, `long_context_qa`)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from cascade.rewards.text import answer_or_whole


def chat_url(endpoint: str) -> str:
    """`http://host:port/v1` or the full `.../chat/completions` URL -> the full URL."""
    url = endpoint.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def chat_completion(url: str, body: dict[str, Any], timeout_s: float, retries: int,
                    backoff_s: float = 1.0) -> str:
    """The text of the first choice; RuntimeError after `retries + 1` failed attempts.

    Retried: connection errors, timeouts, HTTP errors (a restarting server answers 5xx) and a
    reply that is not a chat completion. A reasoning model's `<think>` part, when the server
    leaves it in the content, is dropped: the verdict is what follows it.
    """
    data = json.dumps(body).encode()
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(backoff_s * 2 ** (attempt - 1), 10.0))
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                out = json.loads(resp.read())
            content = out["choices"][0]["message"].get("content")
            return answer_or_whole(content if isinstance(content, str) else "")
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError,
                KeyError, IndexError, TypeError, AttributeError) as e:
            last = e
    raise RuntimeError(f"judge endpoint {url} failed after {retries + 1} attempt(s): "
                       f"{type(last).__name__}: {str(last)[:200]}")
