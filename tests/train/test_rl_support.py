"""Inputs for the RL trainer tests, built offline (no test functions here besides self-checks).

* ``keyword_task``: RL prompts "write a short sentence about X" whose real IF-RL reward
  (IFEval ``keywords:existence``, checked by the reward's if-verifiable checker) is 1 when the
  answer contains "the".
* ``warm_start``: a short supervised warm-start of the tiny random Qwen3 (SmolLM2's ChatML
  tokenizer) on answers like "The cat is calm." / "A cat is calm." (half each), through the same
  chat template the RL prompts use. A random policy never emits <|im_end|>, so every rollout would
  be truncated (reward 0 under the paper's overlong rule); after the warm-start the policy stops
  and earns the keyword reward about half the time, which is what RL then raises.
* ``stage_yaml`` / ``cascade_yaml``: a stage config and a one-stage cascade around it, so tests
  drive the real entry points (``python -m cascade.launch run-stage`` and ``recipes.rl``).
* ``job_env`` / ``run_stage``: ranks under a hard timeout via cascade.engine.launch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RLRecord, write_records

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

TOPICS = ("cat", "dog", "lake", "city", "song", "road", "tree", "book", "car", "ship", "hill", "cup",
          "lamp", "door", "bird", "fish", "rain", "snow", "sun", "moon", "star", "king", "girl", "boy")
ADJECTIVES = ("calm", "big", "old", "kind", "fast", "warm", "quiet", "small", "bright", "new")
KEYWORD = "the"


def keyword_records(n: int = 24) -> list[RLRecord]:
    return [RLRecord(id=f"kw-{i}", domain=RewardDomain.INSTRUCTION, source="test:keyword",
                     prompt=[{"role": "user", "content": f"Write a short sentence about a {TOPICS[i % len(TOPICS)]}."}],
                     instruction_id_list=["keywords:existence"], kwargs=[{"keywords": [KEYWORD]}])
            for i in range(n)]


def keyword_task(out: Path, n: int = 24) -> Path:
    path = out / "rl_keyword.parquet"
    write_records(path, keyword_records(n))
    return path


def warm_start(hf_dir: Path, out: Path, steps: int = 60, seed: int = 0) -> Path:
    """Supervised warm-start of an HF model on short answers (half contain "the"); saves to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade.data.tokenizer import tokenize_conversation

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    samples = []
    for i, topic in enumerate(TOPICS):
        for j, adj in enumerate(ADJECTIVES):
            art = "The" if (i + j) % 2 == 0 else "A"
            msgs = [{"role": "user", "content": f"Write a short sentence about a {topic}."},
                    {"role": "assistant", "content": f"{art} {topic} is {adj}."}]
            s = tokenize_conversation(tok, msgs, mode="instruct")
            samples.append((s.input_ids, s.loss_mask))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(samples), (16,), generator=g).tolist()
        width = max(len(samples[i][0]) for i in idx)
        ids = torch.full((16, width), tok.eos_token_id)
        mask = torch.zeros(16, width, dtype=torch.bool)
        for b, i in enumerate(idx):
            ids[b, : len(samples[i][0])] = torch.tensor(samples[i][0])
            mask[b, : len(samples[i][1])] = torch.tensor(samples[i][1], dtype=torch.bool)
        hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]
        sel = mask[:, 1:]  # only answer positions go through the 49K-way head (the cost of this model)
        logits = model.lm_head(hidden[sel])
        loss = torch.nn.functional.cross_entropy(logits, ids[:, 1:][sel])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


TINY_QWEN3 = dict(  # nemo_configs/base/model/tiny_qwen3.yaml with SmolLM2's vocabulary
    vocab_size=49152, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=32, max_position_embeddings=512, rms_norm_eps=1e-6,
    rope_theta=1_000_000.0, tie_word_embeddings=False,
)


def tiny_hf(out: Path, seed: int = 0) -> Path:
    """A random tiny Qwen3 in HF format with SmolLM2's (ChatML) tokenizer files beside it."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from cascade.offline import smollm2_hf_dir

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(Qwen3Config(**TINY_QWEN3), dtype=torch.float32)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = Path(smollm2_hf_dir()) / name
        if src.is_file():
            shutil.copy2(src, out / name)
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


TINY_STAGE: dict[str, Any] = {
    "kind": "rl",
    "model": {"vocab_size": 49152},
    "precision": {"params_dtype": "fp32"},
    "optim": {"lr": 1.0e-3, "min_lr": 1.0e-3, "weight_decay": 0.0, "use_distributed_optimizer": False},
    "rollout": {"prompts_per_step": 4, "num_generations": 4, "temperature": 1.0, "top_p": 1.0,
                "max_prompt_length": 64, "max_response_length": 12, "backend": "transformers",
                "mode": "instruct"},
    "reward": {"domain": "instruction", "num_workers": 1},
    "train": {"steps": 4, "micro_batch_size": 4, "seed": 7},
    "checkpoint": {"save_interval": 100, "keep_last": 2},
    "logging": {"log_interval": 1, "tensorboard": True},
    "launch": {"nodes": 1, "gpus_per_node": 0, "procs_per_node": 1, "time": "01:00:00", "signal_lead_s": 60},
}


def stage_yaml(path: Path, *, data: Path, extra: dict[str, Any] | None = None, model: str = "tiny_qwen3") -> Path:
    """An RL stage config for the tiny model (transformers generator, fp32, CPU launch shape)."""
    base = REPO / "nemo_configs" / "base"
    body = _merge(TINY_STAGE, {"defaults": [f"{base}/model/{model}", f"{base}/rl"],
                               "data": {"train_files": [str(data)]}})
    path.write_text(json.dumps(_merge(body, extra or {}), indent=1))  # JSON is YAML
    return path


TP2: dict[str, Any] = {"parallel": {"tensor": 2, "pipeline": 1, "context": 1, "sequence_parallel": False},
                       "launch": {"procs_per_node": 2}}


def cascade_yaml(path: Path, *, run_dir: Path, init: Path, stages: list[dict[str, Any]],
                 side: list[dict[str, Any]] | None = None) -> Path:
    body = {"name": "rl_test", "run_dir": str(run_dir), "init_path": str(init), "stages": stages}
    if side:
        body["side_stages"] = side
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def job_env(**extra: str) -> dict[str, str]:
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), "CASCADE_HF_BACKEND": "cascade",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "CASCADE_EVAL_RL": "none", "TOKENIZERS_PARALLELISM": "false"}
    env.update(extra)
    return env


def run_stage_argv(cascade: Path, stage: str, *overrides: str) -> list[str]:
    return ["-m", "cascade.launch", "run-stage", str(cascade), stage, *overrides]


def read_metrics(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_keyword_records_validate() -> None:
    recs = keyword_records(4)
    assert all(r.validate() is r for r in recs)
    assert all(KEYWORD not in t for t in TOPICS + ADJECTIVES)  # only the article can earn the reward
