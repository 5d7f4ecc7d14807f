"""Issue 20 item 3 (and the rewards part of 9): `python -m cascade.rewards score` never writes over
its input, and every path mistake is one line with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import Shell, assert_one_line_error

ROW = '{"response": "so \\\\boxed{4}", "ground_truth": "4"}\n'


@pytest.fixture
def rollouts(sh: Shell) -> Path:
    path = sh.home / "X"
    path.write_text(ROW)
    return path


def test_input_as_output_is_refused_and_the_input_survives(sh: Shell, rollouts: Path) -> None:
    proc = sh(f"python -m cascade.rewards score --domain math {rollouts} {rollouts}")
    assert_one_line_error(proc, str(rollouts), "is the input file")
    assert rollouts.read_text() == ROW


def test_input_reached_through_a_symlink_is_refused(sh: Shell, rollouts: Path) -> None:
    (sh.home / "link").symlink_to(rollouts)
    proc = sh(f"python -m cascade.rewards score --domain math {rollouts} {sh.home / 'link'}")
    assert_one_line_error(proc, "is the input file")
    assert rollouts.read_text() == ROW


@pytest.mark.parametrize("case", ["missing input", "directory input", "missing output dir"])
def test_path_mistakes_are_one_line(sh: Shell, rollouts: Path, case: str) -> None:
    src, dst, needle = {
        "missing input": (sh.home / "nope.jsonl", sh.home / "out.jsonl", "does not exist"),
        "directory input": (sh.home, sh.home / "out.jsonl", "is a directory"),
        "missing output dir": (rollouts, sh.home / "no" / "out.jsonl", "does not exist"),
    }[case]
    proc = sh(f"python -m cascade.rewards score --domain math {src} {dst}")
    assert_one_line_error(proc, needle)
    assert not dst.exists()


def test_reward_model_domain_without_its_flags_names_them(sh: Shell, rollouts: Path) -> None:
    proc = sh(f"python -m cascade.rewards score --domain reward_model {rollouts} {sh.home / 'out.jsonl'}")
    assert_one_line_error(proc, "--rm-endpoint", "--rm-checkpoint")


def test_a_good_run_writes_the_output_whole(sh: Shell, rollouts: Path) -> None:
    out = sh.home / "scored.jsonl"
    proc = sh(f"python -m cascade.rewards score --domain math {rollouts} {out}")
    assert proc.returncode == 0, proc.stderr
    assert '"reward": 1.0' in out.read_text() and rollouts.read_text() == ROW
    assert sorted(p.name for p in sh.home.iterdir() if p.name.endswith(".tmp")) == []


def test_help_lists_the_fields_each_domain_needs(sh: Shell) -> None:
    proc = sh("python -m cascade.rewards score --help")
    assert proc.returncode == 0
    for domain, field in (("math", "ground_truth"), ("code", "tests"), ("instruction", "kwargs")):
        assert any(line.split()[:1] == [domain] and field in line for line in proc.stdout.splitlines()), domain
