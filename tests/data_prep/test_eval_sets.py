"""Decontamination reads the eval-set catalogue: the names evals uses, old names as aliases, and
downloaded benchmarks from the same directory evals reads."""

from __future__ import annotations

import json

import pytest

from data_prep.eval_sets import DEFAULT_OFFLINE, offline_eval_items, parse_eval_file_args


def test_old_and_new_names_give_the_same_items_once(capsys, monkeypatch):
    from evals import catalogue

    monkeypatch.setattr(catalogue, "_noted", set())  # the note is printed once per process
    items = offline_eval_items(("aime24", "aime2024"))
    assert {i.set for i in items} == {"aime24"} and len(items) == len({i.id for i in items}) == 30
    assert "'aime2024' is now called 'aime24'" in capsys.readouterr().err
    assert "math" in DEFAULT_OFFLINE and "aime24" in DEFAULT_OFFLINE


def test_unknown_set_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="unknown eval set 'aime2026'.*known"):
        offline_eval_items(("aime2026",))


def test_a_downloaded_benchmark_is_read_from_the_evals_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_EVAL_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="download it once: hf download livecodebench"):
        offline_eval_items(("lcb_v6",))
    (tmp_path / "livecodebench").mkdir()
    row = {"question_id": "abc123_a", "platform": "atcoder", "contest_id": "abc123",
           "question_content": "Print the sum of two integers given on one line."}
    (tmp_path / "livecodebench" / "test6.jsonl").write_text(json.dumps(row) + "\n")
    items = offline_eval_items(("lcb_v5", "lcb_v6"))  # one download, read once
    assert [(i.set, i.id) for i in items] == [("lcb_v5", "abc123_a")]
    assert items[0].urls == ("https://atcoder.jp/contests/abc123/tasks/abc123_a",)


def test_eval_file_labels_translate_old_names_and_keep_others(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"id": 1, "question": "What is two plus two, written out in words?"}) + "\n")
    items = parse_eval_file_args([f"livecodebench={f}", f"gsm8k_heldout={f}"])
    assert [i.set for i in items] == ["lcb_v6", "gsm8k_heldout"]
