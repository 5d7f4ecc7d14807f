"""Issue 20 item 4: `config check` answers every file in one line, without a traceback: YAML
syntax errors, missing paths, and stages that get `kind:` through `defaults:` (validated in full)."""

from __future__ import annotations

from cli_helpers import REPO, Shell

SFT = REPO / "nemo_configs/qwen3_8b/sft_stage1_16k.yaml"


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_yaml_syntax_error_is_one_line_naming_file_and_line(sh: Shell) -> None:
    bad = sh.home / "bad.yaml"
    bad.write_text("kind: sft\noptim: {lr: [\n")
    proc = sh(f"python -m cascade config check {bad}")
    assert proc.returncode == 1
    [line] = _errors(proc.stderr)
    assert str(bad) in line and "invalid YAML" in line and "line 3" in line


def test_a_missing_path_is_one_line(sh: Shell) -> None:
    proc = sh(f"python -m cascade config check {sh.home / 'nope.yaml'} {sh.home / 'nodir'}")
    assert proc.returncode == 1
    lines = _errors(proc.stderr)
    assert len(lines) == 2 and all("no such file or directory" in line for line in lines)


def test_a_stage_inheriting_kind_is_validated_in_full(sh: Shell) -> None:
    child = sh.home / "child.yaml"
    child.write_text(f"defaults: [{SFT}]\noptim:\n  lr: abc\n")
    proc = sh(f"python -m cascade config check {child}")
    assert proc.returncode == 1
    [line] = _errors(proc.stderr)
    assert str(child) in line and "'optim.lr'" in line and "expected a number" in line
    proc = sh(f"python -m cascade config show {child}")  # the same answer as config show
    assert proc.returncode == 2 and "'optim.lr'" in proc.stderr


def test_a_valid_inheriting_stage_is_classed_a_stage(sh: Shell) -> None:
    child = sh.home / "child.yaml"
    child.write_text(f"defaults: [{SFT}]\noptim:\n  lr: 1.0e-6\n")
    proc = sh(f"python -m cascade config check {child}")
    assert proc.returncode == 0, proc.stderr
    assert f"ok  stage    {child}" in proc.stdout
