"""MOPD teacher selection, routing and the MOPD stage schema (fast; no model is built)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade.config import ConfigError, load_stage_config
from cascade.config.schema import MOPDStageConfig, RLStageConfig, StageKind, schema_for
from cascade.config.schema.mopd import TeacherConfig
from cascade.config.schema.rl import RewardDomain
from cascade.rl import route_to_teachers, teachers
from cascade.rl.teachers import TeacherSelectionError, check_domains, eval_file, select_teachers
from recipes.mopd import parse_stage_dirs

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "nemo_configs" / "base" / "model" / "tiny_qwen3.yaml"
MATH, IF, RM = RewardDomain.MATH, RewardDomain.INSTRUCTION, RewardDomain.REWARD_MODEL


def hf_dir(path: Path) -> Path:
    """Files that make a directory an HF model with a tokenizer (contents are never read here)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    (path / "model.safetensors").write_bytes(b"")
    return path


def stage_dir(root: Path, name: str, scores: dict[str, float] | None, *, fingerprint: str = "fp0",
              metrics: dict[str, dict[str, float]] | None = None) -> Path:
    """A finished stage's output dir: ``hf/`` plus ``evals/<name>.json`` (the evals.runner format)."""
    d = root / name
    hf_dir(d / "hf")
    if scores is not None:
        benches = {b: {"title": b, "metric": "avg@1", "score": s, "metrics": {"avg@1": s, **(metrics or {}).get(b, {})}}
                   for b, s in scores.items()}
        eval_file(d, name).parent.mkdir(parents=True, exist_ok=True)
        eval_file(d, name).write_text(json.dumps({"schema": "cascade.evals/1", "stage": name,
                                                  "model_fingerprint": fingerprint, "benchmarks": benches}))
    return d


def best_of(*stages: str, benchmarks: tuple[str, ...] = ("aime25",), metric: str = "score") -> TeacherConfig:
    return TeacherConfig(best_of=list(stages), benchmarks=list(benchmarks), metric=metric)


# ---- routing ----------------------------------------------------------------------------------

def test_each_example_goes_to_its_domains_teacher() -> None:
    routes = route_to_teachers(["math", "instruction", "math", "reward_model"],
                               {"math": "sft", "instruction": "if_rl", "reward_model": "if_rl"})
    assert routes == {"sft": [0, 2], "if_rl": [1, 3]}
    with pytest.raises(KeyError, match="no MOPD teacher for domain 'code'"):
        route_to_teachers(["code"], {"math": "sft"})


def test_a_prompt_domain_without_a_teacher_is_refused(tmp_path: Path) -> None:
    d = stage_dir(tmp_path, "sft", {"aime25": 50.0})
    choices = select_teachers({MATH: best_of("sft")}, {"sft": d})
    check_domains(choices, {MATH})
    with pytest.raises(TeacherSelectionError, match=r"domain\(s\) \['instruction'\] have no teacher"):
        check_domains(choices, {MATH, IF})


# ---- best-of selection --------------------------------------------------------------------------

def test_best_of_picks_the_highest_mean_score(tmp_path: Path) -> None:
    dirs = {"if_rl": stage_dir(tmp_path, "if_rl", {"ifeval": 70.0, "ifbench": 30.0}),
            "multi_domain_rl": stage_dir(tmp_path, "multi_domain_rl", {"ifeval": 60.0, "ifbench": 45.0})}
    choice = select_teachers({IF: best_of("if_rl", "multi_domain_rl", benchmarks=("ifeval", "ifbench"))}, dirs)[IF]
    assert choice.stage == "multi_domain_rl" and choice.how == "best_of"
    assert [(s.stage, s.score) for s in choice.scores] == [("if_rl", 50.0), ("multi_domain_rl", 52.5)]
    assert choice.init.format == "hf" and choice.init.path == dirs["multi_domain_rl"] / "hf"
    assert "multi_domain_rl (best of if_rl=50, multi_domain_rl=52.5 on ifeval+ifbench score" in choice.describe()


def test_a_tie_goes_to_the_stage_listed_first(tmp_path: Path) -> None:
    dirs = {n: stage_dir(tmp_path, n, {"aime25": 80.0}) for n in ("a", "b", "c")}
    assert select_teachers({MATH: best_of("b", "a", "c")}, dirs)[MATH].stage == "b"
    assert select_teachers({MATH: best_of("c", "b", "a")}, dirs)[MATH].stage == "c"


def test_a_named_metric_is_read_from_the_benchmark_metrics(tmp_path: Path) -> None:
    dirs = {"a": stage_dir(tmp_path, "a", {"aime25": 90.0}, metrics={"aime25": {"pass@4": 10.0}}),
            "b": stage_dir(tmp_path, "b", {"aime25": 50.0}, metrics={"aime25": {"pass@4": 20.0}})}
    assert select_teachers({MATH: best_of("a", "b")}, dirs)[MATH].stage == "a"
    assert select_teachers({MATH: best_of("a", "b", metric="pass@4")}, dirs)[MATH].stage == "b"


def test_a_missing_eval_stops_with_one_line_naming_the_stage_and_file(tmp_path: Path) -> None:
    dirs = {"sft": stage_dir(tmp_path, "sft", {"aime25": 50.0}), "if_rl": stage_dir(tmp_path, "if_rl", None)}
    with pytest.raises(TeacherSelectionError) as e:
        select_teachers({MATH: best_of("sft", "if_rl")}, dirs)
    msg = str(e.value)
    assert "\n" not in msg
    assert "'if_rl'" in msg and str(eval_file(dirs["if_rl"], "if_rl")) in msg


def test_a_missing_or_skipped_benchmark_names_it(tmp_path: Path) -> None:
    d = stage_dir(tmp_path, "sft", {"aime25": 50.0})
    with pytest.raises(TeacherSelectionError, match="benchmark 'ifeval' metric 'score' is missing in .*sft.json"):
        select_teachers({IF: best_of("sft", benchmarks=("ifeval",))}, {"sft": d})
    doc = json.loads(eval_file(d, "sft").read_text())
    doc["benchmarks"]["ifeval"] = {"title": "IFEval", "skipped": "no data"}
    eval_file(d, "sft").write_text(json.dumps(doc))
    with pytest.raises(TeacherSelectionError, match="'ifeval' metric 'score' is skipped"):
        select_teachers({IF: best_of("sft", benchmarks=("ifeval",))}, {"sft": d})


def test_a_stage_the_mopd_stage_does_not_use_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TeacherSelectionError, match=r"\['if_rl'\].*uses: \{if_rl: if_rl\}"):
        select_teachers({MATH: best_of("if_rl")}, {})


# ---- pinned teachers, shared checkpoints ---------------------------------------------------------

def test_pinned_teachers_and_shared_checkpoints_load_once(tmp_path: Path) -> None:
    pinned = hf_dir(tmp_path / "rlhf_branch")
    sft = stage_dir(tmp_path, "sft", {"aime25": 50.0, "ifeval": 70.0})
    choices = select_teachers({MATH: best_of("sft"), IF: best_of("sft", benchmarks=("ifeval",)),
                               RM: TeacherConfig(checkpoint=str(pinned))}, {"sft": sft})
    assert choices[RM].how == "pinned" and choices[RM].init.path == pinned and choices[RM].stage is None
    assert choices[RM].describe().startswith("reward_model: pinned")
    assert teachers.teacher_keys(choices) == [str((sft / "hf").resolve()), str(pinned.resolve())]
    ev = teachers.evidence(choices)
    assert ev["math"]["scores"] == {"sft": 50.0} and ev["reward_model"] == {
        "how": "pinned", "chosen": str(pinned), "weights": str(pinned.resolve()), "format": "hf"}


def test_a_pinned_checkpoint_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TeacherSelectionError, match="pinned .*nowhere"):
        select_teachers({MATH: TeacherConfig(checkpoint=str(tmp_path / "nowhere"))}, {})


# ---- evidence fingerprint (resume check) ---------------------------------------------------------

def test_changed_evidence_changes_the_fingerprint(tmp_path: Path) -> None:
    dirs = {"a": stage_dir(tmp_path, "a", {"aime25": 60.0}), "b": stage_dir(tmp_path, "b", {"aime25": 50.0})}
    cfg = {MATH: best_of("a", "b")}
    fp = teachers.evidence_fingerprint(select_teachers(cfg, dirs))
    assert teachers.evidence_fingerprint(select_teachers(cfg, dirs)) == fp  # same files: same evidence
    stage_dir(tmp_path, "b", {"aime25": 55.0})  # b re-evaluated: a still wins, the scores changed
    changed = select_teachers(cfg, dirs)
    assert changed[MATH].stage == "a" and teachers.evidence_fingerprint(changed) != fp
    stage_dir(tmp_path, "b", {"aime25": 50.0}, fingerprint="fp1")  # same scores of another model
    assert teachers.evidence_fingerprint(select_teachers(cfg, dirs)) not in (fp, teachers.evidence_fingerprint(changed))
    stage_dir(tmp_path, "b", {"aime25": 50.0})
    assert teachers.evidence_fingerprint(select_teachers(cfg, dirs)) == fp


def test_a_retrained_teacher_stage_changes_the_fingerprint(tmp_path: Path) -> None:
    d = stage_dir(tmp_path, "sft", {"aime25": 50.0})
    fp = teachers.evidence_fingerprint(select_teachers({MATH: best_of("sft")}, {"sft": d}))
    (d / "checkpoints" / "iter_0000007").mkdir(parents=True)  # a Megatron checkpoint now wins over hf/
    (d / "checkpoints" / "iter_0000007" / "cascade_meta.json").write_text("{}")
    (d / "checkpoints" / "latest").write_text("iter_0000007\n")
    choice = select_teachers({MATH: best_of("sft")}, {"sft": d})[MATH]
    assert choice.init.format == "megatron" and teachers.evidence_fingerprint({MATH: choice}) != fp


# ---- the stage schema ----------------------------------------------------------------------------

def stage(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "mopd.yaml"
    f.write_text(f"defaults: [{MODEL}]\nkind: mopd\n{body}")
    return f


TEACHERS = "mopd:\n  teachers:\n    math: {best_of: [sft, if_rl], benchmarks: [aime25]}\n"


def test_mopd_schema_extends_the_rl_stage_with_paper_defaults(tmp_path: Path) -> None:
    assert schema_for(StageKind.MOPD) is MOPDStageConfig
    cfg = load_stage_config(stage(tmp_path, TEACHERS + "    instruction: {checkpoint: /models/if}\n"))
    assert isinstance(cfg, MOPDStageConfig) and isinstance(cfg, RLStageConfig) and cfg.kind is StageKind.MOPD
    assert cfg.reward is None
    assert cfg.mopd.teachers[MATH].best_of == ["sft", "if_rl"]
    assert cfg.mopd.teachers[IF].checkpoint == "/models/if"
    assert (cfg.mopd.loss.is_eps_low, cfg.mopd.loss.is_eps_high, cfg.mopd.loss.aggregation) == (0.5, 2.0, "sequence")
    r = cfg.rollout  # C2 Table 8
    assert (r.prompts_per_step, r.num_generations, r.temperature, r.top_p) == (128, 4, 1.0, 1.0)
    assert cfg.train.steps == 52
    assert (cfg.optim.lr, cfg.scheduler.warmup_steps, cfg.scheduler.warmup_start_lr) == (2e-6, 30, 2e-7)


def test_mopd_schema_refuses_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'mopd.teachers.math.bestof'.*unknown key.*did you mean"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    math: {bestof: [sft]}\n"))
    with pytest.raises(ConfigError, match="'mopd.teacher'.*unknown key"):
        load_stage_config(stage(tmp_path, "mopd:\n  teacher: {}\n"))
    with pytest.raises(ConfigError, match="'mopd.teachers'.*must be one of"):  # a domain that does not exist
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    maths: {checkpoint: /x}\n"))


def test_mopd_schema_refuses_an_empty_teacher_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="required key 'mopd'"):
        load_stage_config(stage(tmp_path, ""))
    with pytest.raises(ConfigError, match="'mopd'.*teachers is empty"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers: {}\n"))


def test_mopd_schema_refuses_a_domain_without_a_teacher(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'mopd.teachers.math'.*needs `checkpoint`.*or `best_of"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    math: {}\n"))
    with pytest.raises(ConfigError, match="'mopd.teachers.math'"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    math: null\n"))
    with pytest.raises(ConfigError, match="needs `benchmarks:`"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    math: {best_of: [sft]}\n"))
    with pytest.raises(ConfigError, match="not both"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    math: {best_of: [sft], checkpoint: /x}\n"))
    with pytest.raises(ConfigError, match="not a stage name"):
        load_stage_config(stage(tmp_path, "mopd:\n  teachers:\n    math: {best_of: [Bad-Name], benchmarks: [a]}\n"))


def test_mopd_schema_refuses_what_needs_rewards_or_the_grpo_loss(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GRPO `loss` section does not apply"):
        load_stage_config(stage(tmp_path, TEACHERS + "loss: {kl_coef: 0.01}\n"))
    with pytest.raises(ConfigError, match="dynamic_sampling"):
        load_stage_config(stage(tmp_path, TEACHERS + "filters: {dynamic_sampling: true}\n"))
    with pytest.raises(ConfigError, match="is_eps_low"):
        load_stage_config(stage(tmp_path, TEACHERS + "  loss: {is_eps_low: 1.5}\n"))


def test_standalone_stage_dirs_parse() -> None:
    assert parse_stage_dirs(["sft=/runs/01_sft", "if_rl=/r/02"]) == {"sft": Path("/runs/01_sft"), "if_rl": Path("/r/02")}
    with pytest.raises(SystemExit, match="NAME=DIR"):
        parse_stage_dirs(["sft"])


def test_the_cascade_hands_the_compared_stages_output_dirs_through_uses(tmp_path: Path) -> None:
    from cascade.stages import check_stage_configs, load_cascade

    (tmp_path / "sft.yaml").write_text(f"defaults: [{MODEL}]\nkind: sft\n")
    (tmp_path / "if_rl.yaml").write_text(f"defaults: [{MODEL}]\nkind: rl\nreward: {{domain: instruction}}\n")
    stage(tmp_path, "mopd:\n  teachers:\n    instruction: {best_of: [sft, if_rl], benchmarks: [ifeval]}\n")
    (tmp_path / "cascade.yaml").write_text(
        f"name: t\nrun_dir: {tmp_path / 'run'}\ninit_path: {tmp_path}\nstages:\n"
        "  - {name: sft, kind: sft, config: sft.yaml}\n"
        "  - {name: if_rl, kind: rl, config: if_rl.yaml}\n"
        "  - {name: mopd, kind: mopd, config: mopd.yaml, uses: {sft: sft, if_rl: if_rl}}\n")
    plan = load_cascade(tmp_path / "cascade.yaml")
    cfg = check_stage_configs(plan)[-1]
    mopd = plan.stage("mopd")
    assert mopd.uses == {"sft": tmp_path / "run" / "01_sft", "if_rl": tmp_path / "run" / "02_if_rl"}
    assert set(mopd.depends_on) == {"if_rl", "sft"}  # the launcher waits for both to be COMPLETE
    stage_dir(tmp_path / "run", "01_sft", None)
    stage_dir(tmp_path / "run", "02_if_rl", None)
    for name, d, score in (("sft", "01_sft", 60.0), ("if_rl", "02_if_rl", 75.0)):
        f = eval_file(tmp_path / "run" / d, name)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps({"stage": name, "benchmarks": {"ifeval": {"score": score}}}))
    choice = select_teachers(cfg.mopd.teachers, mopd.uses)[IF]
    assert choice.stage == "if_rl" and choice.init.path == tmp_path / "run" / "02_if_rl" / "hf"
