"""The toy cascade's data: built by the product scripts from the offline packages (no hand-made
fixtures), at the paths the tiny configs read, and usable by the real rewards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cascade.config import load_stage_config
from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.data.records import PreferenceRecord, SFTRecord, read_records, read_rl_records
from cascade.rewards import build_scorer
from data_prep.manifest import sha256_file
from data_prep.toy import ToyConfig, build_toy
from dp_helpers import load_json

TINY = Path(__file__).resolve().parents[2] / "nemo_configs" / "tiny"
SMALL = ToyConfig(sft_gsm8k=20, sft_math=15, sft_mmlu=10, rm_offtopic=10, rm_wrong=6, rm_mmlu=12, math=24,
                  arithmetic=9, if_gsm8k=10, if_mmlu=10, code=12, swe=6, workers=1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory, offline, smollm2_dir):
    out = tmp_path_factory.mktemp("toy") / "data"
    summary = build_toy(out, SMALL)
    return out, summary


def data_files(yaml: Path, toy_dir: Path) -> list[Path]:
    old = os.environ.get("CASCADE_TOY_DATA")
    os.environ["CASCADE_TOY_DATA"] = str(toy_dir)
    try:
        data = load_stage_config(yaml).data
    finally:
        if old is None:
            os.environ.pop("CASCADE_TOY_DATA")
        else:
            os.environ["CASCADE_TOY_DATA"] = old
    return [Path(p) for p in (*data.train_files, *getattr(data, "val_files", []))]


def test_every_tiny_config_data_file_is_built(toy):
    out, summary = toy
    wanted = [f for y in sorted(TINY.glob("*.yaml")) if y.name not in ("cascade.yaml", "common.yaml", "rl_common.yaml")
              for f in data_files(y, out)]
    assert len(wanted) >= 9  # sft train+val, rm train+val, rl rlhf/if/math/code/swe
    for f in wanted:
        assert f.exists(), f"{f} (read by nemo_configs/tiny) was not built"
    for name, files in summary["products"].items():
        assert all(n > 0 for n in files.values()), f"{name} is empty: {files}"
        m = load_json(out / name / "manifest.json")
        for o in m["outputs"]:
            assert sha256_file(o["path"]) == o["sha256"]
        assert m["steps"] and m["sources"] and all(s["sha256"] for s in m["sources"])
    assert summary["code_verified"] is True


def test_toy_records_and_rewards(toy):
    out, _ = toy
    domains = {"rlhf": RewardDomain.REWARD_MODEL, "if": RewardDomain.INSTRUCTION, "math": RewardDomain.MATH,
               "code": RewardDomain.CODE, "swe": RewardDomain.SWE}
    recs = {k: read_rl_records(out / "rl" / k / "train.parquet") for k in domains}
    for k, d in domains.items():
        assert recs[k] and {r.domain for r in recs[k]} == {d}
    assert read_records(out / "sft" / "train.parquet", SFTRecord)
    assert read_records(out / "rm" / "val.parquet", PreferenceRecord)
    arithmetic = [r for r in recs["math"] if r.source == "toy/arithmetic"]
    assert len(arithmetic) == 9 and len(recs["math"]) > 9  # beside the MATH problems
    math = recs["math"][:4] + arithmetic[:2]
    with build_scorer(RewardConfig(domain=RewardDomain.MATH, num_workers=1)) as scorer:
        rows = [{**r.reward_fields(), "response": f"<think>\nok\n</think>\nSo $\\boxed{{{r.ground_truth}}}$."} for r in math]
        assert [x.reward for x in scorer.score(rows)] == [1.0] * len(math)
    import cascade.offline as off

    gold = {f"code-mbpp-{r['task_id']}": r["code"] for r in off.mbpp()}
    code = recs["code"][:4]
    with build_scorer(RewardConfig(domain=RewardDomain.CODE, num_workers=1)) as scorer:
        rows = [{**r.reward_fields(), "response": f"```python\n{gold[r.id]}\n```"} for r in code]
        assert [x.reward for x in scorer.score(rows)] == [1.0] * len(code)
    held_out = {int(x) for x in range(311, 511)}
    assert not any(int(r.id.split("-")[-1]) in held_out for r in recs["code"])


def test_arithmetic_rows_are_seeded_and_their_answers_are_right():
    from data_prep.toy_sources import arithmetic_rows

    rows = arithmetic_rows(30)
    assert rows == arithmetic_rows(30) and rows != arithmetic_rows(30, seed=1)
    for r in rows:
        a, op, b = r["problem"].removeprefix("What is ").removesuffix("?").split()
        assert int(r["answer"]) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] >= 0
    assert {r["problem"].split()[3] for r in rows} == {"+", "-", "*"}
