"""The cascade stage graph: hand-off, side stages, and rejection of invalid graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade.config import ConfigError
from cascade.config.schema import StageKind
from cascade.stages import load_cascade

REPO = Path(__file__).resolve().parents[2]
TINY_SFT = REPO / "nemo_configs" / "tiny" / "sft.yaml"
TINY_RM = REPO / "nemo_configs" / "tiny" / "reward_model.yaml"
TINY_RL = REPO / "nemo_configs" / "tiny" / "math_rl.yaml"


def cascade(tmp_path: Path, stages: str, side: str = "") -> Path:
    f = tmp_path / "cascade.yaml"
    f.write_text(
        "name: t\nrun_dir: /runs/t\ninit_path: /models/base\n"
        + (f"side_stages:\n{side}" if side else "")
        + f"stages:\n{stages}"
    )
    return f


def test_each_stage_starts_from_the_previous_output(tmp_path: Path) -> None:
    plan = load_cascade(
        cascade(
            tmp_path,
            f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n"
            f"  - {{name: b, kind: rl, config: {TINY_RL}}}\n"
            f"  - {{name: c, kind: rl, config: {TINY_RL}}}\n",
        )
    )
    a, b, c = plan.chain
    assert a.init_from == "/models/base" and a.init_stage is None
    assert b.init_from == str(a.output_dir) and b.init_stage == "a"
    assert c.init_from == str(b.output_dir)
    assert [s.index for s in plan.chain] == [1, 2, 3]
    assert a.output_dir == Path("/runs/t/01_a")
    assert a.launcher.name == "stage_01_a.sh"
    assert b.kind is StageKind.RL and b.depends_on == ("a",)


def test_side_stage_output_reaches_its_users(tmp_path: Path) -> None:
    plan = load_cascade(
        cascade(
            tmp_path,
            f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n"
            f"  - {{name: b, kind: rl, config: {TINY_RL}, uses: {{reward_model: rm}}}}\n",
            side=f"  - {{name: rm, kind: reward_model, config: {TINY_RM}, init_path: /models/rm}}\n",
        )
    )
    rm = plan.stage("rm")
    assert rm.side and rm.index == 0 and rm.launcher.name == "side_rm.sh"
    assert rm.init_from == "/models/rm"
    b = plan.stage("b")
    assert b.uses == {"reward_model": rm.output_dir}
    assert set(b.depends_on) == {"a", "rm"}
    assert [s.name for s in plan.chain] == ["a", "b"]


def test_side_stage_can_start_from_a_chain_stage_and_runs_after_it(tmp_path: Path) -> None:
    """Cascade-2's RLHF teacher branch: a side stage trained from SFT, used by a later chain stage."""
    from cascade.launch.submit import _needed

    plan = load_cascade(
        cascade(
            tmp_path,
            f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n"
            f"  - {{name: b, kind: rl, config: {TINY_RL}}}\n"
            f"  - {{name: c, kind: rl, config: {TINY_RL}, uses: {{teacher: t}}}}\n",
            side=f"  - {{name: t, kind: rl, config: {TINY_RL}, init_from_stage: a}}\n",
        )
    )
    t, a = plan.stage("t"), plan.stage("a")
    assert t.side and t.init_from == str(a.output_dir) and t.depends_on == ("a",)
    assert [s.name for s in plan.stages] == ["t", "a", "b", "c"]  # listing: side stages first
    assert [s.name for s in plan.run_order] == ["a", "t", "b", "c"]  # run-local: never before SFT
    assert _needed(plan, None) == ["a", "t", "b", "c"]  # sbatch order: afterok ids exist when needed
    assert _needed(plan, "c") == ["t", "c"]


def test_explicit_init_from_stage_branches_from_an_earlier_stage(tmp_path: Path) -> None:
    plan = load_cascade(
        cascade(
            tmp_path,
            f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n"
            f"  - {{name: b, kind: rl, config: {TINY_RL}}}\n"
            f"  - {{name: c, kind: rl, config: {TINY_RL}, init_from_stage: a}}\n",
        )
    )
    assert plan.stage("c").init_from == str(plan.stage("a").output_dir)


def test_reading_an_output_no_stage_writes_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reads init_from_stage='nope', but no stage writes that output"):
        load_cascade(cascade(tmp_path, f"  - {{name: a, kind: sft, config: {TINY_SFT}, init_from_stage: nope}}\n"))
    with pytest.raises(ConfigError, match="uses.reward_model='rm'"):
        load_cascade(cascade(tmp_path, f"  - {{name: a, kind: rl, config: {TINY_RL}, uses: {{reward_model: rm}}}}\n"))


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate stage name 'a'"):
        load_cascade(
            cascade(
                tmp_path,
                f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n  - {{name: a, kind: sft, config: {TINY_SFT}}}\n",
            )
        )


def test_cycles_are_rejected(tmp_path: Path) -> None:
    side = (
        f"  - {{name: x, kind: reward_model, config: {TINY_RM}, init_from_stage: y}}\n"
        f"  - {{name: y, kind: reward_model, config: {TINY_RM}, init_from_stage: x}}\n"
    )
    with pytest.raises(ConfigError, match="cycle: x -> y -> x"):
        load_cascade(cascade(tmp_path, f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n", side=side))
    with pytest.raises(ConfigError, match="cycle: a -> a"):
        load_cascade(cascade(tmp_path, f"  - {{name: a, kind: sft, config: {TINY_SFT}, init_from_stage: a}}\n"))


def test_a_chain_stage_cannot_start_from_a_later_stage(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="listed after it"):
        load_cascade(
            cascade(
                tmp_path,
                f"  - {{name: a, kind: sft, config: {TINY_SFT}, init_from_stage: b}}\n"
                f"  - {{name: b, kind: sft, config: {TINY_SFT}, init_path: /m}}\n",
            )
        )


def test_invalid_stage_names_and_missing_configs_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must match"):
        load_cascade(cascade(tmp_path, f"  - {{name: Bad-Name, kind: sft, config: {TINY_SFT}}}\n"))
    with pytest.raises(ConfigError, match="config 'missing.yaml' not found"):
        load_cascade(cascade(tmp_path, "  - {name: a, kind: sft, config: missing.yaml}\n"))


def test_side_stage_needs_an_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="side stage 'rm' needs init_path"):
        load_cascade(
            cascade(
                tmp_path,
                f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n",
                side=f"  - {{name: rm, kind: reward_model, config: {TINY_RM}}}\n",
            )
        )


def test_relative_run_dir_is_anchored_at_the_repo(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(f"name: t\nrun_dir: runs/x\ninit_path: m\nstages:\n  - {{name: a, kind: sft, config: {TINY_SFT}}}\n")
    plan = load_cascade(f)
    assert plan.chain[0].output_dir == REPO / "runs" / "x" / "01_a"
    assert plan.chain[0].init_from == str(REPO / "m")


def test_cascade_overrides_apply(tmp_path: Path) -> None:
    plan = load_cascade(cascade(tmp_path, f"  - {{name: a, kind: sft, config: {TINY_SFT}}}\n"), ["run_dir=/elsewhere"])
    assert plan.chain[0].output_dir == Path("/elsewhere/01_a")
