"""The eval-set catalogue is the one list of names: benchmarks register only under it, and the
launcher's eval hook finds each shipped cascade's suite from the suites, not from code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evals import catalogue, stage_eval
from evals.benchmarks import benchmark_names, get_benchmark, register_benchmark
from evals.spec import BenchmarkSpec

REPO = Path(__file__).resolve().parents[2]


def test_every_benchmark_is_a_catalogue_set_and_every_catalogue_benchmark_is_registered():
    assert set(benchmark_names()) == set(catalogue.benchmark_set_names())
    for name in benchmark_names():
        assert get_benchmark(name).offline == catalogue.CATALOGUE[name].offline, name


def test_a_benchmark_outside_the_catalogue_is_refused():
    with pytest.raises(ValueError, match="not in evals/catalogue.py"):
        register_benchmark(BenchmarkSpec("aime2024", "AIME", list, "math", k=1, offline=True))


def test_every_set_is_offline_or_names_its_download():
    from evals.data_files import DOWNLOADS

    for s in catalogue.CATALOGUE.values():
        assert s.offline != (s.download is not None), s.name
        assert s.download is None or s.download in DOWNLOADS, s.name
    assert set(catalogue.ALIASES).isdisjoint(catalogue.CATALOGUE)


def test_old_names_are_aliases_with_a_note(capsys, monkeypatch):
    monkeypatch.setattr(catalogue, "_noted", set())  # the note is printed once per process
    assert catalogue.canonical_name("aime2024") == "aime24"
    assert catalogue.get_eval_set("livecodebench").name == "lcb_v6"
    assert catalogue.canonical_name("gsm8k_heldout") == "gsm8k_heldout"  # a user's own label stays
    assert "'aime2024' is now called 'aime24'" in capsys.readouterr().err
    with pytest.raises(KeyError, match="unknown eval set 'nope'"):
        catalogue.get_eval_set("nope")


def test_default_decontamination_covers_every_offline_benchmark():
    defaults = set(catalogue.default_decontamination_sets())
    offline = {n for n in catalogue.benchmark_set_names() if catalogue.CATALOGUE[n].offline}
    assert offline - defaults == {"math500"}
    math = {t for _, t in catalogue.CATALOGUE["math"].texts()}
    assert {t for _, t in catalogue.CATALOGUE["math500"].texts()} <= math


def test_each_shipped_cascade_has_its_suite_from_the_suite_files(monkeypatch):
    monkeypatch.delenv(stage_eval.SUITE_ENV, raising=False)
    names = {yaml.safe_load(p.read_text())["name"]: p for p in (REPO / "nemo_configs").glob("*/cascade.yaml")}
    by_cascade = stage_eval.suites_by_cascade()
    assert set(names) <= set(by_cascade), set(names) - set(by_cascade)
    assert by_cascade["toy_cascade"] == "toy" and stage_eval.suite_for("toy_cascade") == "toy"
    assert stage_eval.suite_for("someone_elses_cascade") == stage_eval.DEFAULT_SUITE
    monkeypatch.setenv(stage_eval.SUITE_ENV, "toy_smoke")
    assert stage_eval.suite_for("toy_cascade") == "toy_smoke"


def test_two_suites_claiming_one_cascade_is_an_error(tmp_path, monkeypatch):
    from cascade.config.errors import ConfigError
    from evals import suite

    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\ncascades: [toy_cascade]\nbenchmarks: {{}}\n")
    monkeypatch.setattr(suite, "SUITES_DIR", tmp_path)
    with pytest.raises(ConfigError, match="claimed by suites 'a' and 'b'"):
        stage_eval.suites_by_cascade()
