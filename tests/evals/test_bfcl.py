"""BFCL V3 non-live AST: the loader on hand-made files in BFCL's layout, and our AST checker
(gold 1, each kind of wrong call 0, malformed rows one-line errors). Files are written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.benchmarks import bfcl, get_benchmark
from evals.data_files import EvalDataError, EvalDataMissing
from evals.scoring import ScoringConfig, ScoringContext, build_scorer

AREA = {"name": "calculate_triangle_area", "description": "Area of a triangle.",
        "parameters": {"type": "dict", "properties": {
            "base": {"type": "integer", "description": "base"}, "height": {"type": "integer", "description": "height"},
            "unit": {"type": "string", "description": "unit"}}, "required": ["base", "height"]}}
WEATHER = {"name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "dict", "properties": {"city": {"type": "string"}, "celsius": {"type": "boolean"}},
                          "required": ["city"]}}
CLOCK = {"name": "get_time", "description": "Time in a city.",
         "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ADD = {"name": "math.add", "description": "a + b",
       "parameters": {"type": "dict", "properties": {"a": {"type": "float"}, "b": {"type": "float"}},
                      "required": ["a", "b"]}}
JOIN = {"name": "join", "description": "Join words.",
        "parameters": {"type": "dict", "properties": {"words": {"type": "array", "items": {"type": "string"}},
                                                      "options": {"type": "dict", "properties": {}}},
                       "required": ["words"]}}


def q(qid: str, text: str, functions: list) -> dict:
    return {"id": qid, "question": [[{"role": "user", "content": text}]], "function": functions}


QUESTIONS = {
    "simple": [q("simple_0", "Area of a triangle with base 10 and height 5?", [AREA])],
    "multiple": [q("multiple_0", "Weather in Paris?", [CLOCK, WEATHER])],
    "parallel": [q("parallel_0", "Weather in Paris and in Tokyo?", [WEATHER])],
    "parallel_multiple": [q("parallel_multiple_0", "Add 1.5 and 2, and join x and y.", [ADD, JOIN])],
}
ANSWERS = {
    "simple": [{"id": "simple_0", "ground_truth": [
        {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]}],
    "multiple": [{"id": "multiple_0", "ground_truth": [{"get_weather": {"city": ["Paris", "Paris, France"],
                                                                        "celsius": [True, ""]}}]}],
    "parallel": [{"id": "parallel_0", "ground_truth": [{"get_weather": {"city": ["Paris"], "celsius": [""]}},
                                                       {"get_weather": {"city": ["Tokyo"], "celsius": [""]}}]}],
    "parallel_multiple": [{"id": "parallel_multiple_0", "ground_truth": [
        {"math.add": {"a": [1.5], "b": [2.0]}},
        {"join": {"words": [["x", "y"]], "options": [{"sep": [" ", ""]}, ""]}}]}],
}


def write_bfcl(root: Path, questions: dict = QUESTIONS, answers: dict = ANSWERS) -> Path:
    d = root / "bfcl"
    (d / "possible_answer").mkdir(parents=True, exist_ok=True)
    for cat in bfcl.CATEGORIES:
        for sub, rows in ((d, questions[cat]), (d / "possible_answer", answers[cat])):
            (sub / f"BFCL_v3_{cat}.json").write_text(
                "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return d


@pytest.fixture
def bfcl_data(eval_data: Path) -> Path:
    bfcl._items.cache_clear()
    yield write_bfcl(eval_data)
    bfcl._items.cache_clear()


def call(name: str, **args) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def answer(*calls: str) -> str:
    return "<think>which tool?</think>" + "\n".join(calls)


def test_loader_builds_prompts_with_the_tools(bfcl_data):
    items = {it.id: it for it in get_benchmark("bfcl_v3").loader()}
    assert list(items) == ["simple_0", "multiple_0", "parallel_0", "parallel_multiple_0"]
    system, user = items["simple_0"].messages
    assert system["role"] == "system" and "<tools>" in system["content"] and user["content"].startswith("Area")
    declared = json.loads(system["content"].split("<tools>\n")[1].split("\n")[0])
    assert declared["function"]["name"] == "calculate_triangle_area"
    assert declared["function"]["parameters"]["type"] == "object"  # BFCL's "dict", in JSON-schema types
    assert items["parallel_0"].reference["category"] == "parallel"
    assert get_benchmark("bfcl_v3").scorer == "bfcl_ast" and get_benchmark("bfcl_v3").k == 1


def test_missing_download_says_how(eval_data):
    bfcl._items.cache_clear()
    with pytest.raises(EvalDataMissing, match="gorilla-llm/Berkeley-Function-Calling-Leaderboard"):
        get_benchmark("bfcl_v3").loader()


CASES = [  # (item, response, score)
    ("simple_0", answer(call("calculate_triangle_area", base=10, height=5)), 1.0),  # optional unit omitted
    ("simple_0", answer(call("calculate_triangle_area", base=10, height=5, unit="Units")), 1.0),
    ("simple_0", answer("<tool_call>\n<function=calculate_triangle_area>\n<parameter=base>\n10\n</parameter>\n"
                        "<parameter=height>\n5\n</parameter>\n</function>\n</tool_call>"), 1.0),  # C2 XML syntax
    ("simple_0", answer(call("calculate_triangle_area", base=10, height=6)), 0.0),  # wrong value
    ("simple_0", answer(call("calculate_triangle_area", base="10", height=5)), 0.0),  # wrong type
    ("simple_0", answer(call("calculate_triangle_area", base=10)), 0.0),  # required missing
    ("simple_0", answer(call("calculate_triangle_area", base=10, height=5, color="red")), 0.0),  # unexpected
    ("simple_0", answer(call("triangle_area", base=10, height=5)), 0.0),  # wrong name
    ("simple_0", "<think>x</think>The area is 25.", 0.0),  # no call
    ("simple_0", "<think>x</think><tool_call>\n{not json}\n</tool_call>", 0.0),  # unparsable
    ("simple_0", "<think>" + call("calculate_triangle_area", base=10, height=5) + "</think>ok", 0.0),  # only thought
    ("multiple_0", answer(call("get_weather", city="paris, france")), 1.0),  # case and punctuation
    ("multiple_0", answer(call("get_weather", city="Paris", celsius=True)), 1.0),
    ("multiple_0", answer(call("get_weather", city="Paris", celsius=False)), 0.0),
    ("multiple_0", answer(call("get_time", city="Paris")), 0.0),  # the other function
    ("parallel_0", answer(call("get_weather", city="Tokyo"), call("get_weather", city="Paris")), 1.0),  # any order
    ("parallel_0", answer(call("get_weather", city="Paris")), 0.0),  # one call short
    ("parallel_0", answer(call("get_weather", city="Paris"), call("get_weather", city="Paris")), 0.0),
    ("parallel_0", answer(*[call("get_weather", city=c) for c in ("Paris", "Tokyo", "Rome")]), 0.0),  # extra call
    ("parallel_multiple_0", answer(call("join", words=["x", "y"]), call("math.add", a=1.5, b=2)), 1.0),  # int as float
    ("parallel_multiple_0", answer(call("math.add", a=1.5, b=2), call("join", words=["x", "y"], options={"sep": " "})),
     1.0),
    ("parallel_multiple_0", answer(call("math.add", a=1.5, b=2), call("join", words=["y", "x"])), 0.0),  # list order
    ("parallel_multiple_0", answer(call("math.add", a=1.5, b=2), call("join", words=["x", "y"], options={"sep": "+"})),
     0.0),  # a nested dict value outside the allowed ones
]


def test_ast_checker(bfcl_data, tmp_path):
    items = {it.id: it for it in get_benchmark("bfcl_v3").loader()}
    scorer = build_scorer("bfcl_ast", ScoringContext(ScoringConfig(), tmp_path))
    results = scorer.score([items[i] for i, _, _ in CASES], [r for _, r, _ in CASES])
    got = [(i, r, res.score, res.info.get("reason")) for (i, r, _), res in zip(CASES, results)]
    assert [g[2] for g in got] == [s for _, _, s in CASES], [g for g, c in zip(got, CASES) if g[2] != c[2]]
    assert all(res.info["reason"] == "match" for res in results if res.score == 1.0)


def _broken(category: str, which: str, rows: list) -> tuple[dict, dict]:
    qs, ans = dict(QUESTIONS), dict(ANSWERS)
    (qs if which == "q" else ans)[category] = rows
    return qs, ans


@pytest.mark.parametrize("category, which, rows, match", [
    ("simple", "q", ['{"id": "simple_0", '], "BFCL_v3_simple.json: line 1: not JSON"),
    ("simple", "q", [{"question": "hi", "function": [AREA]}], "BFCL_v3_simple.json: line 1: expected an object"),
    ("multiple", "q", [q("multiple_0", "hi", [{"name": "f"}])], "BFCL_v3_multiple.json: line 1: function must be"),
    ("parallel", "q", [{"id": "parallel_0", "question": [[{"role": "assistant", "content": "x"}]],
                        "function": [WEATHER]}], "BFCL_v3_parallel.json: line 1: question must be"),
    ("parallel", "q", [q("parallel_9", "hi", [WEATHER])], "line 1: id 'parallel_9' has no row in"),
    ("simple", "a", [{"id": "simple_0", "ground_truth": [{"nope": {"x": [1]}}]}],
     "possible_answer/BFCL_v3_simple.json: line 1: ground_truth calls 'nope'"),
    ("simple", "a", [{"id": "simple_0", "ground_truth": [{"calculate_triangle_area": {"base": 10}}]}],
     "possible_answer/BFCL_v3_simple.json: line 1: ground_truth"),
])
def test_malformed_rows_are_one_line_errors_naming_file_and_row(eval_data, category, which, rows, match):
    bfcl._items.cache_clear()
    write_bfcl(eval_data, *_broken(category, which, rows))
    try:
        with pytest.raises(EvalDataError, match=match) as e:
            get_benchmark("bfcl_v3").loader()
    finally:
        bfcl._items.cache_clear()
    assert "\n" not in str(e.value)
