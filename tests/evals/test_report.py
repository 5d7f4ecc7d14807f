"""The stage-by-stage report on a synthetic run dir whose results are real `evals.run` output:
a row per benchmark, a column per stage in cascade order, published numbers beside ours, plots;
and the launcher hook that writes those results after a stage."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from cascade.config.schema.kinds import StageKind
from evals.report import main as report_main
from evals.report import make_report
from evals.runner import results_path

REPO = Path(__file__).resolve().parents[2]
SUITE = """
name: report_test
cache_every: 4
generator: {backend: transformers, dtype: fp32, max_batch_size: 4, num_threads: 1}
sampling: {max_new_tokens: 8}
benchmarks:
  gsm8k: {limit: 3, k: 2}
  mmlu: {limit: 4, k: 1}
  gpqa_diamond: {k: 1}
"""
TOY_STAGES = ["sft", "rlhf", "if_rl", "math_rl", "code_rl", "swe_rl"]  # nemo_configs/tiny/cascade.yaml


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory, tiny_model_dir) -> tuple[dict, Path]:
    """The launcher's eval hook on a stage of a toy run: one genuine results document
    (gpqa_diamond is skipped: its data is not downloaded), and the suite file it used."""
    from cascade.runtime.stage_dirs import StageDirs
    from evals import stage_eval

    root = tmp_path_factory.mktemp("real")
    suite_file = root / "suite.yaml"
    suite_file.write_text(SUITE)
    dirs = StageDirs(root / "run" / "03_if_rl")
    dirs.root.mkdir(parents=True)
    dirs.hf.symlink_to(tiny_model_dir)
    ctx = SimpleNamespace(rank=0, plan=SimpleNamespace(name="toy_cascade"), dirs=dirs,
                          stage=SimpleNamespace(name="if_rl", kind=StageKind.RL))
    mp = pytest.MonkeyPatch()
    mp.setenv("CASCADE_EVAL_DATA", str(root / "no_eval_data"))
    mp.setenv("CASCADE_EVAL_SUITE", str(suite_file))
    try:
        assert stage_eval.run(ctx) == 0
    finally:
        mp.undo()
    return json.loads((dirs.evals / "if_rl.json").read_text()), suite_file


@pytest.fixture(scope="module")
def real_results(hook_run) -> dict:
    return hook_run[0]


def _synthetic_run(tmp_path: Path, real: dict) -> Path:
    """Toy-cascade stage dirs; each with the real document, its scores moved per stage; code_rl
    not evaluated yet; RL stages with training metrics."""
    run = tmp_path / "runs" / "toy"
    for i, name in enumerate(TOY_STAGES, start=1):
        stage = run / f"{i:02d}_{name}"
        stage.mkdir(parents=True)
        if name != "sft":
            with open(stage / "metrics.jsonl", "w") as f:
                for step in range(5):
                    f.write(json.dumps({"step": step, "reward/mean": 0.1 * i + 0.02 * step,
                                        "response_length/mean": 50.0 + 3 * step, "loss": 0.0}) + "\n")
                f.write('{"step": 5, "reward/me')  # torn last line of a killed trainer
        if name == "code_rl":
            continue
        doc = copy.deepcopy(real)
        doc.update(stage=name, stage_index=i, stage_dir=str(stage))
        for bench in ("gsm8k", "mmlu"):
            doc["benchmarks"][bench]["score"] = 10.0 * i + (bench == "mmlu")
        path = results_path(stage)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc))
    return run


def test_report_table_and_plots(tmp_path, real_results):
    run = _synthetic_run(tmp_path, real_results)
    md_path = make_report(run)
    md = md_path.read_text()
    out = md_path.parent
    header = next(line for line in md.splitlines() if line.startswith("| benchmark"))
    assert header == "| benchmark | 01 sft | 02 rlhf | 03 if_rl | 04 math_rl | 06 swe_rl |"
    bench_table = md[:md.index("Training (from")]
    rows = [line for line in bench_table.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")]
    assert [r.split(" | ")[0] for r in rows] == ["| GSM8K (n=3, avg@2)", "| MMLU (EM) (n=4, avg@1)",
                                                 "| GPQA-Diamond"]
    gsm8k = rows[0].split(" | ")[1:]
    assert [cell.split(" ")[0] for cell in gsm8k] == ["10.0", "20.0", "30.0", "40.0", "60.0"]
    assert all("±" in cell for cell in gsm8k)
    assert rows[2].count("skip") == 5 and "Skipped:" in md and "hf download Idavidrein/gpqa" in md
    assert "No results yet: 05 code_rl" in md
    assert "[" not in rows[1]  # the toy cascade has no published numbers
    for png in ("benchmarks.png", "rl_curves.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.size[0] > 400
        assert f"({png})" in md
    data = json.loads((out / "report.json").read_text())
    assert data["stages"] == ["01 sft", "02 rlhf", "03 if_rl", "04 math_rl", "06 swe_rl"]
    assert len(data["rows"]) == 3 and len(data["rows"][0]["cells"]) == 5


def test_report_training_table_gives_each_rl_stages_reward_at_start_and_end(tmp_path, real_results):
    run = _synthetic_run(tmp_path, real_results)
    md = make_report(run, plots=False).read_text()
    training = md[md.index("Training (from each stage's metrics.jsonl"):].splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in training if line.startswith("| 0")}
    assert set(rows) == {"02 rlhf", "03 if_rl", "04 math_rl", "05 code_rl", "06 swe_rl"}  # sft logged none here
    # math_rl (i=4): reward 0.4 + 0.02*step over steps 0-4 -> mean of the first two, of the last two
    assert rows["04 math_rl"][0] == "reward/mean"
    assert [float(v) for v in rows["04 math_rl"][1:3]] == pytest.approx([0.41, 0.47])
    assert rows["04 math_rl"][3].rstrip(" |") == "4"


def test_report_with_cascade_yaml_and_published_numbers(tmp_path, real_results, capsys):
    run = _synthetic_run(tmp_path, real_results)
    assert report_main([str(run), "--cascade", str(REPO / "nemo_configs/tiny/cascade.yaml"),
                        "--paper", "8b", "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md == capsys.readouterr().out.rstrip("\n") + "\n"
    mmlu = next(line for line in md.splitlines() if line.startswith("| MMLU"))
    # paper.md §3.9, 8B unified MMLU: SFT 83.0, RLHF 83.1, IF-RL 83.4, Math RL 83.4, SWE RL 83.7
    assert [c.split("[")[1].rstrip("] |") for c in mmlu.split(" | ")[1:]] == ["83.0", "83.1", "83.4", "83.4", "83.7"]
    assert "Nemotron-Cascade-8B (unified)" in md and not (tmp_path / "rep" / "benchmarks.png").exists()


def test_stage_eval_hook_writes_the_stage_results(tmp_path, hook_run, monkeypatch):
    from cascade.runtime.stage_dirs import StageDirs
    from evals import stage_eval

    doc, suite_file = hook_run
    assert doc["stage"] == "if_rl" and doc["stage_index"] == 3 and doc["suite"] == "report_test"
    assert set(doc["benchmarks"]) == {"gsm8k", "mmlu", "gpqa_diamond"}
    assert doc["benchmarks"]["gsm8k"]["generation"]["generated"] == 6
    side = SimpleNamespace(rank=0, plan=SimpleNamespace(name="toy_cascade"), dirs=StageDirs(tmp_path / "side_rm"),
                           stage=SimpleNamespace(name="reward_model", kind=StageKind.REWARD_MODEL))
    assert stage_eval.run(side) == 0 and not (tmp_path / "side_rm").exists()
    other_rank = SimpleNamespace(rank=1, plan=side.plan, dirs=StageDirs(tmp_path / "r1"), stage=side.stage)
    assert stage_eval.run(other_rank) == 0
    monkeypatch.setenv("CASCADE_EVAL_SUITE", str(suite_file))
    assert stage_eval.suite_for("nemotron_cascade_8b") == str(suite_file)
    monkeypatch.delenv("CASCADE_EVAL_SUITE")
    assert [stage_eval.suite_for(n) for n in ("toy_cascade", "nemotron_cascade_14b_thinking")] == \
        ["toy", "paper_14b_thinking"]


def test_training_table_reads_mopds_reverse_kl() -> None:
    """A MOPD stage logs no reward: its row is the sampled-token reverse KL to its teachers."""
    from evals.training_logs import summarize

    rows = [{"step": i, "mopd/reverse_kl": v, "lr": 1e-5} for i, v in enumerate([0.9, 0.7, 0.5, 0.3], 1)]
    s = summarize(rows)
    assert s is not None and s.key == "mopd/reverse_kl" and s.steps == 4
    assert (s.first, s.last) == pytest.approx((0.8, 0.4))
