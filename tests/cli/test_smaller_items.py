"""Issue 20 item 9: status after run-local, a corrupt jobs.json, the instruction scorer's JSON-text
kwargs, data_prep on an empty input, its --help and usage lines."""

from __future__ import annotations

import json

import pytest
from cli_helpers import REPO, Shell, assert_one_line_error

from cascade.runtime.stage_dirs import StageDirs


def test_status_after_run_local_reads_the_complete_markers(sh: Shell) -> None:
    run = sh.home / "runs" / "toy"
    StageDirs(run / "01_sft").mark_complete({"stage": "sft", "step": 2, "eval": "ok",
                                             "cascade": str(REPO / "nemo_configs/tiny/cascade.yaml")})
    proc = sh("python -m cascade.launch status nemo_configs/tiny/cascade.yaml")
    assert proc.returncode == 3, proc.stderr  # some stages still to run
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert "COMPLETE" in lines["sft"] and "step 2" in lines["sft"] and "INCOMPLETE" in lines["rlhf"]
    proc = sh(f"python -m cascade.launch status {run}")
    assert proc.returncode == 3 and f"run locally in {run}" in proc.stdout
    assert [line.split()[0] for line in proc.stdout.splitlines()[2:]] == list(lines)  # every stage, by name


def test_a_corrupt_jobs_file_is_named(sh: Shell) -> None:
    run = sh.home / "runs" / "toy"
    run.mkdir(parents=True)
    (run / "jobs.json").write_text('{"stages": [')
    proc = sh(f"python -m cascade.launch status {run}")
    assert_one_line_error(proc, str(run / "jobs.json"), "corrupt")
    (run / "jobs.json").write_text('{"stages": [{"stage": "sft"}]}')
    proc = sh(f"python -m cascade.launch status {run}/jobs.json")
    assert_one_line_error(proc, str(run / "jobs.json"), "not a jobs file")


def test_instruction_kwargs_as_json_text_score_like_objects(sh: Shell) -> None:
    rows = [{"response": "hello world", "prompt": "say hi", "instruction_id_list": ids, "kwargs": kwargs}
            for ids, kwargs in ((["change_case:english_lowercase"], [{}]),
                                (["change_case:english_lowercase"], "[{}]"),
                                ('["change_case:english_lowercase"]', ["{}"]))]
    src, dst = sh.home / "if.jsonl", sh.home / "scored.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = sh(f"python -m cascade.rewards score --domain instruction {src} {dst} --workers 1")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["reward"] for line in dst.read_text().splitlines()] == [1.0, 1.0, 1.0]


def test_data_prep_on_an_empty_input_writes_nothing_and_says_so(sh: Shell) -> None:
    empty, out = sh.home / "empty.jsonl", sh.home / "out"
    empty.write_text("")
    proc = sh(f"python -m data_prep.rm_pairs --input {empty} --out-dir {out}")
    assert_one_line_error(proc, str(out), "0 records", "read 0->0")
    assert not out.exists()


@pytest.mark.parametrize("module", ["decontaminate", "dedup", "eval_sets"])
def test_library_steps_answer_help(sh: Shell, module: str) -> None:
    proc = sh(f"python -m data_prep.{module} --help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: python -m data_prep.{module}")
    assert "Not a command of its own" in proc.stdout
    assert_one_line_error(sh(f"python -m data_prep.{module}"), "library step")


@pytest.mark.parametrize("module", ["sft_blend", "rl_prompts", "rm_pairs", "swe_prompts", "if_constraints",
                                    "difficulty_filter"])
def test_usage_lines_name_the_module(sh: Shell, module: str) -> None:
    proc = sh(f"python -m data_prep.{module} --help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m data_prep.{module} ")


def test_plan_and_dry_run_warn_about_missing_inputs(sh: Shell) -> None:
    missing = sh.home / "no-data"
    proc = sh(f"CASCADE_TOY_DATA={missing} python -m cascade plan nemo_configs/tiny/cascade.yaml --json")
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # warnings go to stderr: --json stays machine-readable
    assert f"WARNING: data.train_files {missing}/sft/train.parquet does not exist yet (read by sft)" in proc.stderr
    proc = sh(f"CASCADE_TOY_DATA={missing} bash launchers/cascade.sh nemo_configs/tiny/cascade.yaml --dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"# WARNING: data.train_files {missing}/sft/train.parquet does not exist yet (read by sft)" in proc.stdout


def test_data_prep_never_writes_over_its_own_input(sh: Shell) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = sh.home / "rm"
    out.mkdir()
    rows = [{"context": [{"role": "user", "content": f"Say hi {i}"}], "response1": "Hi!", "response2": "hello",
             "overall_preference": -1} for i in range(4)]
    pq.write_table(pa.Table.from_pylist(rows), out / "train.parquet")
    before = (out / "train.parquet").read_bytes()
    proc = sh(f"python -m data_prep.rm_pairs --input {out / 'train.parquet'} --out-dir {out}")
    assert_one_line_error(proc, str(out / "train.parquet"), "is an input of this run")
    assert (out / "train.parquet").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["train.parquet"]


@pytest.mark.parametrize("command", ["sft_blend --stage 1 --no-decontam", "rm_pairs"])
def test_data_prep_input_that_does_not_exist_is_one_line(sh: Shell, command: str) -> None:
    missing, out = sh.home / "no-such-input", sh.home / "out"
    proc = sh(f"python -m data_prep.{command} --input {missing} --out-dir {out}")
    assert_one_line_error(proc, f"input {missing} does not exist")
    assert not out.exists()


def test_sft_blend_of_nothing_writes_nothing_and_keeps_the_earlier_product(sh: Shell) -> None:
    out = sh.home / "sft"
    out.mkdir()
    (out / "train.parquet").write_bytes(b"an earlier product")
    (out / "manifest.json").write_text("{}")
    empty = sh.home / "empty"
    empty.mkdir()
    proc = sh(f"python -m data_prep.sft_blend --stage 1 --input {empty} --out-dir {out} --no-decontam")
    line = assert_one_line_error(proc, str(out), "0 rows from --input", "nothing written", "no input files match")
    assert "domain" in line
    assert (out / "train.parquet").read_bytes() == b"an earlier product"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.parquet"]  # no shards, no temp files
    assert (out / "manifest.json").read_text() == "{}"


def test_one_path_rule_data_files_are_relative_to_the_repo_root(sh: Shell) -> None:
    rel = f".cache/tests-cli/{sh.home.name}"
    (REPO / rel / "sft").mkdir(parents=True, exist_ok=True)
    try:
        (REPO / rel / "sft" / "train.parquet").write_bytes(b"")
        proc = sh(f"cd {sh.home} && CASCADE_TOY_DATA={rel} python -m cascade plan {REPO}/nemo_configs/tiny/cascade.yaml")
        assert proc.returncode == 0, proc.stderr
        assert f"{rel}/sft/val.parquet does not exist" in proc.stderr  # checked...
        assert f"{rel}/sft/train.parquet" not in proc.stderr  # ...from the repo root, not the cwd
    finally:
        import shutil

        shutil.rmtree(REPO / rel)
