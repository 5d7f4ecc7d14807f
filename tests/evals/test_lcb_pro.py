"""LiveCodeBench Pro: the loader on hand-made local files, and the C++ judge in the code sandbox
(gold 1, wrong 0, and attacker programs 0). Files are written into tmp_path by the tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cascade.rewards.code import cpp
from evals.benchmarks import get_benchmark
from evals.benchmarks import lcb_pro as lp
from evals.data_files import EvalDataError, EvalDataMissing
from evals.scoring import ScorerUnavailable, ScoringConfig, ScoringContext

SUM = "Read two integers a and b; print a + b."


def row(pid: str, quarter: str = "25q2", difficulty: str = "easy", **kw) -> dict:
    r = {"id": pid, "quarter": quarter, "difficulty": difficulty, "problem_statement": SUM,
         "time_limit_s": 1, "memory_limit_mb": 256,
         "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4\n", "output": "6"},
                   {"input": "0 0", "output": " 0 \n"}]}
    r.update(kw)
    return r


@pytest.fixture
def lcb_dir(eval_data: Path) -> Path:
    d = eval_data / "lcb_pro"
    d.mkdir()
    lp._rows.cache_clear()
    yield d
    lp._rows.cache_clear()


def write(d: Path, rows: list, name: str = "problems.jsonl") -> Path:
    p = d / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def test_loader_selects_quarter_and_difficulty(lcb_dir):
    write(lcb_dir, [row("b"), row("a"), row("m", difficulty="medium"), row("h", difficulty="hard"),
                    row("q1", quarter="25Q1", time_limit_s=2.5, memory_limit_mb=512)])
    easy = get_benchmark("lcb_pro_25q2_easy").loader()
    assert [it.id for it in easy] == ["a", "b"]
    assert [it.id for it in get_benchmark("lcb_pro_25q2_med").loader()] == ["m"]
    (q1,) = get_benchmark("lcb_pro_25q1_easy").loader()
    assert q1.reference["time_limit_s"] == 2.5 and q1.reference["memory_limit_mb"] == 512
    assert "2.5 second(s)" in q1.messages[0]["content"] and SUM in q1.messages[0]["content"]
    assert easy[0].reference["tests"]["inputs"] == ["1 2\n", "10 -4\n", "0 0"]
    spec = get_benchmark("lcb_pro_25q2_med")
    assert spec.k == 8 and spec.paper_row == "lcb_pro_25q2_med" and spec.scorer == "lcb_pro"


def test_loader_reads_parquet(lcb_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    r = row("p1", tests=json.dumps(row("x")["tests"]))  # tests may be a JSON string column
    pq.write_table(pa.Table.from_pylist([r]), lcb_dir / "p.parquet")
    (item,) = get_benchmark("lcb_pro_25q2_easy").loader()
    assert item.id == "p1" and item.reference["tests"]["outputs"][0] == "3\n"


def test_missing_download_says_how(eval_data):
    lp._rows.cache_clear()
    with pytest.raises(EvalDataMissing, match="lcb_pro"):
        get_benchmark("lcb_pro_25q2_easy").loader()


@pytest.mark.parametrize("bad, match", [
    ('{"id": "x"', "line 2: not JSON"),
    (row("x", difficulty="trivial"), "line 2: difficulty 'trivial'"),
    ({k: v for k, v in row("x").items() if k != "tests"}, "line 2: missing field 'tests'"),
    (row("x", tests=[{"input": "1"}]), r"line 2: tests\[0\]"),
    (row("x", tests=[]), "line 2: tests must be a non-empty list"),
    (row("x", time_limit_s=0), "line 2: time_limit_s must be a positive number"),
    (row("x", quarter="24q4"), "line 2: quarter"),
    (row("a"), "line 2: problem id 'a' appears twice"),
])
def test_malformed_rows_are_one_line_errors_naming_file_and_row(lcb_dir, bad, match):
    path = write(lcb_dir, [row("a"), bad])
    with pytest.raises(EvalDataError, match=match) as e:
        get_benchmark("lcb_pro_25q2_easy").loader()
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_extract_cpp_takes_the_last_cpp_block_after_thinking():
    resp = "<think>```cpp\nint x;\n```</think>try:\n```python\nprint(1)\n```\n```cpp\nint main(){}\n```"
    assert lp.extract_cpp(resp) == "int main(){}\n"
    assert lp.extract_cpp("<think>```cpp\nint main(){}\n```") is None  # unfinished thinking
    assert lp.extract_cpp("no code") is None


def test_without_gxx_the_scorer_is_unavailable_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(cpp.shutil, "which", lambda name: None)
    with pytest.raises(ScorerUnavailable, match="g\\+\\+ is not installed") as e:
        lp.CppScorer(ScoringContext(ScoringConfig(num_workers=1), tmp_path))
    assert "\n" not in str(e.value)


# --- the judge (needs g++ and bubblewrap) -------------------------------------------------------
def _need_judge() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap missing: run scripts/install_system_deps.sh")
    problem = cpp.gxx_problem()
    if problem:
        pytest.skip(problem)


def cpp_answer(body: str) -> str:
    return f"<think>plan</think>Here it is.\n```cpp\n{body}\n```"


GOLD = '#include <cstdio>\nint main(){long long a,b; scanf("%lld %lld",&a,&b); printf("%lld\\n",a+b);}'
WRONG = '#include <cstdio>\nint main(){long long a,b; scanf("%lld %lld",&a,&b); printf("%lld\\n",a-b);}'


def test_judge_gold_wrong_and_attackers(lcb_dir):
    _need_judge()
    data = write(lcb_dir, [row("sum")])
    (item,) = get_benchmark("lcb_pro_25q2_easy").loader()
    attackers = {
        # read the local data file (expected outputs) at run time, print what it finds
        "reads_data_file": '#include <cstdio>\nint main(){FILE*f=fopen("%s","r"); if(!f) return 0; '
                           'char b[4096]; size_t n=fread(b,1,sizeof b,f); fwrite(b,1,n,stdout);}' % data,
        # pull the data file into the program at compile time
        "includes_data_file": f'#include "{data}"\nint main(){{}}',
        "exits_early": '#include <cstdlib>\n#include <cstdio>\nint main(){ std::exit(0); printf("3\\n"); }',
        "prints_nothing": "int main(){ return 0; }",
        "answers_first_test_only": '#include <cstdio>\nint main(){ printf("3\\n"); }',
        "sleeps_past_limit": '#include <unistd.h>\n#include <cstdio>\nint main(){ sleep(3); printf("3\\n"); }',
        "spins_ignoring_alarm": '#include <csignal>\nint main(){ signal(SIGALRM, SIG_IGN); for(;;); }',
    }
    responses = {"gold": cpp_answer(GOLD), "gold_whitespace": cpp_answer(GOLD.replace('"%lld\\n"', '"  %lld  "')),
                 "wrong": cpp_answer(WRONG), "compile_error": cpp_answer("int main( {"), "no_code": "</think>no",
                 **{k: cpp_answer(v) for k, v in attackers.items()}}
    scorer = lp.CppScorer(ScoringContext(ScoringConfig(num_workers=1), lcb_dir))
    try:
        results = dict(zip(responses, scorer.score([item] * len(responses), list(responses.values()))))
    finally:
        scorer.close()
    assert results["gold"].score == 1.0 and results["gold"].info["verdict"] == "passed"
    assert results["gold_whitespace"].score == 1.0
    verdicts = {k: (r.score, r.info["verdict"]) for k, r in results.items() if not k.startswith("gold")}
    assert all(score == 0.0 for score, _ in verdicts.values()), verdicts
    assert verdicts["wrong"][1] == "wrong_answer" and verdicts["compile_error"][1] == "compile_error"
    assert verdicts["no_code"][1] == "no_code" and verdicts["includes_data_file"][1] == "compile_error"
    assert verdicts["sleeps_past_limit"][1] == "timeout" and verdicts["spins_ignoring_alarm"][1] == "timeout"
