"""(slow) The MOPD stage learns from its teacher: a tiny Qwen3 student (the warm-started keyword
policy of the RL tests, which starts its sentence with "The" or "A" about half each) is distilled
from a teacher that is the same policy fine-tuned to always say "The" (a marker behaviour), through
the real entry point (``python -m recipes.mopd`` on one gloo rank, transformers rollouts). The
teacher is chosen by best-of selection between two "earlier stages" (the student itself and the
marker model) from their eval files; the held-out sampled-token reverse KL to the teacher, measured
here with the generator before and after the stage, must drop clearly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cascade.config.schema.common import ChatMode
from cascade.data.records import write_records
from cascade.engine.launch import run_local
from test_rl_loop import policy  # noqa: F401  (the warm-started policy fixture, cached by pytest)
from test_rl_support import ADJECTIVES, REPO, TOPICS, job_env, keyword_records, read_metrics

JOB_TIMEOUT = 1500
STEPS = 16
HELD_OUT = ("river", "horse", "tower", "garden", "train", "chair", "cloud", "apple")


def marker_teacher(warm: Path, out: Path, steps: int = 40, seed: int = 1) -> Path:
    """The warm policy fine-tuned on "The <topic> is <adj>." only (its marker: always "The")."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade.data.tokenizer import tokenize_conversation

    tok = AutoTokenizer.from_pretrained(warm)
    model = AutoModelForCausalLM.from_pretrained(warm, dtype=torch.float32)
    samples = []
    for topic in TOPICS:
        for adj in ADJECTIVES:
            msgs = [{"role": "user", "content": f"Write a short sentence about a {topic}."},
                    {"role": "assistant", "content": f"The {topic} is {adj}."}]
            s = tokenize_conversation(tok, msgs, mode="instruct")
            samples.append((s.input_ids, s.loss_mask))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
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
        sel = mask[:, 1:]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[sel]), ids[:, 1:][sel])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def fake_stage(root: Path, name: str, model: Path, score: float) -> Path:
    """An earlier stage's output as MOPD reads it: ``hf/`` and ``evals/<name>.json``."""
    d = root / name
    shutil.copytree(model, d / "hf")
    (d / "evals").mkdir(parents=True)
    (d / "evals" / f"{name}.json").write_text(json.dumps({
        "schema": "cascade.evals/1", "stage": name, "model_fingerprint": name,
        "benchmarks": {"ifeval": {"metric": "avg@1", "score": score, "metrics": {"avg@1": score}}}}))
    return d


def heldout_reverse_kl(student: Path, teacher: Path, samples_per_prompt: int = 8) -> tuple[float, float]:
    """(mean over sampled tokens of log π_student − log π_teacher, fraction of answers starting with
    "The") on held-out prompts: the student samples (T = 1), the teacher scores the same tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade.data.tokenizer import encode_generation_prompt
    from cascade.generation import GeneratorConfig, SamplingParams, build_generator

    tok = AutoTokenizer.from_pretrained(student)
    prompts = [encode_generation_prompt(tok, [{"role": "user", "content": f"Write a short sentence about a {t}."}],
                                        variant="cascade1", mode=ChatMode.INSTRUCT) for t in HELD_OUT]
    gen = build_generator(GeneratorConfig(model_path=str(student), backend="transformers", dtype="fp32",
                                          max_batch_size=64, num_threads=1))
    try:
        outs = gen.generate(prompts, [SamplingParams(n=samples_per_prompt, temperature=1.0, top_p=1.0,
                                                     max_new_tokens=12, seed=100 + i) for i in range(len(prompts))])
    finally:
        gen.close()
    ref = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32).eval()
    diff, count, the = 0.0, 0, 0
    with torch.no_grad():
        for p, out in zip(prompts, outs):
            for s in out.samples:
                if not s.token_ids:
                    continue
                ids = torch.tensor([list(p) + list(s.token_ids)])
                logp = torch.log_softmax(ref(input_ids=ids).logits[0, :-1].float(), -1)
                resp = torch.arange(len(p) - 1, ids.shape[1] - 1)
                t_lp = logp[resp, ids[0, len(p):]]
                diff += float(torch.tensor(s.logprobs).sum() - t_lp.sum())
                count += len(s.token_ids)
                the += s.text.strip().startswith("The")
    n = sum(len(o.samples) for o in outs)
    return diff / max(count, 1), the / n


@pytest.mark.slow
def test_mopd_distils_the_teachers_marker(policy: Path, tmp_path: Path) -> None:  # noqa: F811
    teacher = marker_teacher(policy, tmp_path / "marker_model")
    stages = tmp_path / "stages"
    dirs = {"sft": fake_stage(stages, "sft", policy, 40.0), "marker": fake_stage(stages, "marker", teacher, 90.0)}
    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(24))
    base = REPO / "nemo_configs" / "base"
    cfg = {
        "defaults": [f"{base}/model/tiny_qwen3", f"{base}/rl"], "kind": "mopd",
        "model": {"vocab_size": 49152}, "precision": {"params_dtype": "fp32"},
        "optim": {"lr": 1.0e-3, "min_lr": 1.0e-3, "weight_decay": 0.0, "use_distributed_optimizer": False},
        "rollout": {"prompts_per_step": 4, "num_generations": 4, "temperature": 1.0, "top_p": 1.0,
                    "max_prompt_length": 64, "max_response_length": 12, "backend": "transformers", "mode": "instruct"},
        "data": {"train_files": [str(data)]},
        "train": {"steps": STEPS, "micro_batch_size": 4, "seed": 7},
        "checkpoint": {"save_interval": 100, "keep_last": 1},
        "logging": {"log_interval": 1, "tensorboard": False},
        "launch": {"nodes": 1, "gpus_per_node": 0, "procs_per_node": 1, "time": "01:00:00", "signal_lead_s": 60},
        "mopd": {"teachers": {"instruction": {"best_of": ["sft", "marker"], "benchmarks": ["ifeval"]}}},
    }
    (tmp_path / "mopd.yaml").write_text(json.dumps(cfg))
    out = tmp_path / "run" / "mopd"
    argv = ["-m", "recipes.mopd", str(tmp_path / "mopd.yaml"), "--init-from", str(policy), "--output-dir", str(out),
            "--name", "mopd", "--stage", f"sft={dirs['sft']}", "--stage", f"marker={dirs['marker']}"]
    results = run_local(1, argv, timeout=JOB_TIMEOUT, log_dir=tmp_path / "logs", env=job_env(), cwd=REPO)
    assert results[0].returncode == 0, results[0].output[-6000:]
    log = results[0].output
    assert "teacher instruction: marker (best of sft=40, marker=90 on ifeval score" in log

    manifest = json.loads((out / "stage_manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "mopd"
    assert manifest["extra"]["teachers"]["instruction"]["chosen"] == "marker"
    assert manifest["extra"]["teachers"]["instruction"]["scores"] == {"sft": 40.0, "marker": 90.0}

    lines = read_metrics(out)
    assert [m["step"] for m in lines] == list(range(1, STEPS + 1))
    for key in ("mopd/reverse_kl", "mopd/reverse_kl/instruction", "mopd/is_weight", "mopd/is_truncated_frac",
                "mopd/teacher_rows/marker", "mismatch/token_mult_prob_error", "grad_norm", "lr"):
        assert key in lines[0], (key, sorted(lines[0]))
    assert all(m["mismatch/token_mult_prob_error"] < 1.001 for m in lines)  # refit: generator == trainer (fp32)
    assert all(m["mopd/is_truncated_frac"] == 0.0 for m in lines)
    train_kl = [m["mopd/reverse_kl"] for m in lines]

    before, the_before = heldout_reverse_kl(policy, teacher)
    after, the_after = heldout_reverse_kl(out / "hf", teacher)
    print(f"MOPD learning test: training reverse KL per step {[round(x, 3) for x in train_kl]}; held-out "
          f"sampled-token reverse KL {before:.3f} -> {after:.3f}; answers starting with 'The' "
          f"{the_before:.2f} -> {the_after:.2f}")
    assert after < 0.6 * before, (before, after, train_kl)
    assert sum(train_kl[-4:]) / 4 < 0.5 * sum(train_kl[:2]) / 2, train_kl
