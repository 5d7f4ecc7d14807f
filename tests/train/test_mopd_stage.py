"""(slow) The MOPD stage learns from its teachers, each on its own domain: a tiny Qwen3 student (the
warm-started keyword policy of the RL tests, which starts its sentence with "The" or "A" about half
each) is distilled, through the real entry point (``python -m recipes.mopd`` on one gloo rank,
transformers rollouts), from two teachers that are the same policy fine-tuned on a marker:
"Write a short sentence about a X." (domain ``instruction``) -> always "The ...", chosen by best-of
selection between two "earlier stages" (the student itself and the marker model) from their eval
files; and "Describe a X in one sentence." (domain ``reward_model``) -> always "The X is very Y.", a pinned
checkpoint (the student first learns to answer both prompts with "The" or "A", half each). On held-out prompts of each domain, the sampled-token reverse KL to that domain's
teacher, measured here with the generator before and after the stage, must drop clearly, and the
student's answers must move toward that teacher's marker.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cascade.config.schema.common import ChatMode
from cascade.config.schema.rl import RewardDomain
from cascade.data.records import RLRecord, write_records
from cascade.engine.launch import run_local
from test_rl_loop import policy  # noqa: F401  (the warm-started policy fixture, cached by pytest)
from test_rl_support import ADJECTIVES, REPO, TOPICS, job_env, keyword_records, read_metrics

JOB_TIMEOUT = 1500
STEPS = 20
HELD_OUT = ("river", "horse", "tower", "garden", "train", "chair", "cloud", "apple")
WRITE = "Write a short sentence about a {}."  # domain instruction -> teacher says "The ..."
DESCRIBE = "Describe a {} in one sentence."  # domain reward_model -> teacher says "A ..."


def pick(article: str | tuple[str, str], topic: str, adj: str) -> str:
    if isinstance(article, str):
        return article
    return article[(TOPICS.index(topic) + ADJECTIVES.index(adj)) % 2]


def describe_records(n: int = 24) -> list[RLRecord]:
    return [RLRecord(id=f"desc-{i}", domain=RewardDomain.REWARD_MODEL, source="test:describe",
                     prompt=[{"role": "user", "content": DESCRIBE.format(TOPICS[i % len(TOPICS)])}])
            for i in range(n)]


def marker_teacher(warm: Path, out: Path, steps: int = 40, seed: int = 1, prompt: str = WRITE,
                   article: str | tuple[str, str] = "The", answer: str = "{article} {topic} is {adj}.") -> Path:
    """The warm policy fine-tuned on ``answer`` (default "<article> <topic> is <adj>.") to ``prompt``
    only (its marker: always ``article``; with two articles, half each, as the warm policy on WRITE)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade.data.tokenizer import tokenize_conversation

    tok = AutoTokenizer.from_pretrained(warm)
    model = AutoModelForCausalLM.from_pretrained(warm, dtype=torch.float32)
    samples = []
    for topic in TOPICS:
        for adj in ADJECTIVES:
            msgs = [{"role": "user", "content": prompt.format(topic)},
                    {"role": "assistant", "content": answer.format(article=pick(article, topic, adj), topic=topic,
                                                                    adj=adj)}]
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


def starts_with_the(text: str) -> bool:
    return text.strip().startswith("The ")


def says_very(text: str) -> bool:
    return " very " in f" {text.strip()} "


def heldout_reverse_kl(student: Path, teacher: Path, samples_per_prompt: int = 8, prompt: str = WRITE,
                       marker: Callable[[str], bool] = starts_with_the) -> tuple[float, float]:
    """(mean over sampled tokens of log π_student − log π_teacher, fraction of answers with the
    teacher's ``marker``) on held-out ``prompt``s: the student samples (T = 1), the teacher scores the
    same tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cascade.data.tokenizer import encode_generation_prompt
    from cascade.generation import GeneratorConfig, SamplingParams, build_generator

    tok = AutoTokenizer.from_pretrained(student)
    prompts = [encode_generation_prompt(tok, [{"role": "user", "content": prompt.format(t)}],
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
                the += marker(s.text)
    n = sum(len(o.samples) for o in outs)
    return diff / max(count, 1), the / n


@pytest.mark.slow
def test_mopd_moves_the_student_toward_each_domains_teacher(policy: Path, tmp_path: Path) -> None:  # noqa: F811
    # the student: the warm policy taught DESCRIBE prompts too (half "The", half "A", as on WRITE).
    # Two teachers fine-tuned from it on their own domain's prompts: WRITE -> always "The ...";
    # DESCRIBE -> always "The <topic> is very <adj>." (a second marker later in the answer, so the two
    # teachers agree where a 2-layer student cannot yet tell the prompts apart, and differ where it must)
    student = marker_teacher(policy, tmp_path / "student", prompt=DESCRIBE, article=("The", "A"), seed=3)
    teacher = marker_teacher(student, tmp_path / "marker_model")
    teacher_a = marker_teacher(student, tmp_path / "describe_model", prompt=DESCRIBE, seed=2,
                               answer="{article} {topic} is very {adj}.")
    stages = tmp_path / "stages"
    dirs = {"sft": fake_stage(stages, "sft", student, 40.0), "marker": fake_stage(stages, "marker", teacher, 90.0)}
    data = tmp_path / "kw.parquet"
    write_records(data, keyword_records(24) + describe_records(24))
    base = REPO / "nemo_configs" / "base"
    cfg = {
        "defaults": [f"{base}/model/tiny_qwen3", f"{base}/rl"], "kind": "mopd",
        "model": {"vocab_size": 49152}, "precision": {"params_dtype": "fp32"},
        "optim": {"lr": 1.0e-3, "min_lr": 1.0e-3, "weight_decay": 0.0, "use_distributed_optimizer": False},
        "rollout": {"prompts_per_step": 8, "num_generations": 4, "temperature": 1.0, "top_p": 1.0,
                    "max_prompt_length": 64, "max_response_length": 12, "backend": "transformers", "mode": "instruct"},
        "data": {"train_files": [str(data)]},
        "train": {"steps": STEPS, "micro_batch_size": 4, "seed": 7},
        "checkpoint": {"save_interval": 100, "keep_last": 1},
        "logging": {"log_interval": 1, "tensorboard": False},
        "launch": {"nodes": 1, "gpus_per_node": 0, "procs_per_node": 1, "time": "01:00:00", "signal_lead_s": 60},
        "mopd": {"teachers": {"instruction": {"best_of": ["sft", "marker"], "benchmarks": ["ifeval"]},
                              "reward_model": {"checkpoint": str(teacher_a)}}},
    }
    (tmp_path / "mopd.yaml").write_text(json.dumps(cfg))
    out = tmp_path / "run" / "mopd"
    argv = ["-m", "recipes.mopd", str(tmp_path / "mopd.yaml"), "--init-from", str(student), "--output-dir", str(out),
            "--name", "mopd", "--stage", f"sft={dirs['sft']}", "--stage", f"marker={dirs['marker']}"]
    results = run_local(1, argv, timeout=JOB_TIMEOUT, log_dir=tmp_path / "logs", env=job_env(), cwd=REPO)
    assert results[0].returncode == 0, results[0].output[-6000:]
    log = results[0].output
    assert "teacher instruction: marker (best of sft=40, marker=90 on ifeval score" in log

    manifest = json.loads((out / "stage_manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "mopd"
    assert manifest["extra"]["teachers"]["instruction"]["chosen"] == "marker"
    assert manifest["extra"]["teachers"]["instruction"]["scores"] == {"sft": 40.0, "marker": 90.0}
    assert manifest["extra"]["teachers"]["reward_model"]["chosen"] == str(teacher_a)

    lines = read_metrics(out)
    assert [m["step"] for m in lines] == list(range(1, STEPS + 1))
    for key in ("mopd/reverse_kl", "mopd/reverse_kl/instruction", "mopd/reverse_kl/reward_model",
                "mopd/is_weight", "mopd/is_truncated_frac",
                "mopd/teacher_rows/marker", "mismatch/token_mult_prob_error", "grad_norm", "lr"):
        assert key in lines[0], (key, sorted(lines[0]))
    assert all(m["mismatch/token_mult_prob_error"] < 1.001 for m in lines)  # refit: generator == trainer (fp32)
    assert all(m["mopd/is_truncated_frac"] == 0.0 for m in lines)
    train_kl = [m["mopd/reverse_kl"] for m in lines]
    per_domain = {d: [round(m[f"mopd/reverse_kl/{d}"], 3) for m in lines if f"mopd/reverse_kl/{d}" in m]
                  for d in ("instruction", "reward_model")}
    print(f"MOPD training reverse KL per domain: {per_domain}")

    before, the_before = heldout_reverse_kl(student, teacher)
    after, the_after = heldout_reverse_kl(out / "hf", teacher)
    before_a, a_before = heldout_reverse_kl(student, teacher_a, prompt=DESCRIBE, marker=says_very)
    after_a, a_after = heldout_reverse_kl(out / "hf", teacher_a, prompt=DESCRIBE, marker=says_very)
    _, a_teacher = heldout_reverse_kl(teacher_a, teacher_a, prompt=DESCRIBE, marker=says_very)
    _, the_teacher = heldout_reverse_kl(teacher, teacher)
    _, very_on_write = heldout_reverse_kl(out / "hf", teacher, marker=says_very)
    print(f"teachers' own marker rates on held-out prompts: 'The' {the_teacher:.2f}, 'very' {a_teacher:.2f}; "
          f"the student's 'very' on WRITE prompts after MOPD {very_on_write:.2f}")
    print(f"MOPD learning test: training reverse KL per step {[round(x, 3) for x in train_kl]}; held-out "
          f"sampled-token reverse KL, 'Write' prompts to the 'The' teacher {before:.3f} -> {after:.3f} "
          f"(answers starting with 'The' {the_before:.2f} -> {the_after:.2f}); 'Describe' prompts to the 'very' "
          f"teacher {before_a:.3f} -> {after_a:.3f} (answers saying 'very' {a_before:.2f} -> {a_after:.2f})")
    # each domain moves toward its own teacher (held-out prompts, new topics); with two teachers
    # pulling one 2-layer student the moves are smaller than the one-teacher case (measured here:
    # WRITE 1.021 -> 0.731, 'The' 0.59 -> 1.00; DESCRIBE 1.602 -> 1.314; the student does not pick up
    # "very" in 20 steps: on-policy reverse KL only pushes down what the student samples)
    assert after < 0.8 * before, (before, after, per_domain)
    assert after_a < 0.9 * before_a, (before_a, after_a, per_domain)
    assert the_after > the_before, (the_before, the_after)
    assert very_on_write < 0.1  # the DESCRIBE teacher's marker did not leak into the other domain
    for domain, kl in per_domain.items():  # training, per domain: last 4 steps vs the first 2
        assert sum(kl[-4:]) / 4 < 0.8 * sum(kl[:2]) / 2, (domain, kl)
