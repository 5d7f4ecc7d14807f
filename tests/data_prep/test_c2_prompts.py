"""Cascade-2 RL prompt products (`data_prep.c2_prompts`) and the toy C2 sets (`data_prep.toy_c2`):
rows in the released shapes become valid records that the domain's real scorer pays 1 for a right
answer and 0 for a wrong one; malformed rows are skipped, logged and counted."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_toy import SMALL

from cascade.config.schema.rl import RewardConfig, RewardDomain, ServedModelConfig
from cascade.data.messages import ToolCall
from cascade.data.records import read_rl_records
from cascade.data.tool_syntax import c1_call, c2_call
from cascade.rewards.registry import build_scorer
from data_prep import c2_prompts
from data_prep.toy import build_toy
from data_prep.toy_c2 import SETS, ToyC2Config, build_toy_c2
from data_prep.toy_c2 import main as toy_c2_main
from dp_helpers import load_json, step, write_jsonl

FAST = ["--eval-sets", "aime24", "--workers", "1"]
BAD_JSON = "{not json"


def run(tmp_path: Path, domain: str, rows: list, aliased: list, *args: str):
    """`rows` (plus a line of bad JSON) in a.jsonl, `aliased` (other column spellings) in b.jsonl:
    a file's column names are resolved once, from its first row."""
    raw = write_jsonl(tmp_path / "raw" / domain / "a.jsonl", rows, (BAD_JSON,))
    write_jsonl(raw.parent / "b.jsonl", aliased)
    out = tmp_path / "out" / domain
    assert c2_prompts.main([domain, "--input", str(raw.parent), "--out-dir", str(out), *FAST, *args]) == 0
    return read_rl_records(out / "train.parquet"), load_json(out / "manifest.json")


def rewards(domain: RewardDomain, records, responses, **cfg) -> list[float]:
    with build_scorer(RewardConfig(domain=domain, num_workers=1, **cfg)) as scorer:
        rows = [{**r.reward_fields(), "response": resp} for r, resp in zip(records, responses)]
        return [x.reward for x in scorer.score(rows)]


def bad_row_lines(manifest: dict) -> list[str]:
    """"a.jsonl:N" for each skipped row."""
    return sorted(f"{Path(b['where'].split(' row ')[0]).name}:{b['where'].rsplit(' ', 1)[1]}"
                  for b in manifest["bad_rows"]["examples"])


# --- mcqa -----------------------------------------------------------------------------------------
def test_mcqa_rows_in_every_option_shape_become_lettered_prompts(tmp_path, offline, caplog):
    mmlu = offline.mmlu("validation")[:3]
    rows = [{"question": mmlu[0]["question"], "options": mmlu[0]["choices"], "answer": mmlu[0]["answer"]},  # index
            {"question": mmlu[1]["question"], "options": {k: v for k, v in zip("ABCD", mmlu[1]["choices"])},
             "answer": "ABCD"[mmlu[1]["answer"]]},
            {"question": mmlu[2]["question"], "options": json.dumps([{k: v} for k, v in zip("ABCD", mmlu[2]["choices"])]),
             "answer": mmlu[2]["choices"][mmlu[2]["answer"]]},  # the option's text
            {"question": "Which gas do plants absorb?\n(A) Oxygen\n(B) Carbon dioxide\n(C) Helium", "answer": "(b)"},
            {"question": "Pick one", "options": ["x", "x", "y"], "answer": "A"},  # filtered: duplicate options
            {"question": "No options here", "answer": "A"},  # bad: nothing to choose from
            {"question": "Q?", "options": ["p", "q"], "answer": "E"},  # bad: no option E
            {"question": "Q?", "options": ["p", "q"]}]  # bad: no answer
    aliased = [{"problem": "Water boils at sea level at", "choices": ["90 C", "100 C"], "expected_answer": "B"}]
    recs, m = run(tmp_path, "mcqa", rows, aliased)
    assert len(recs) == 5 and {r.domain for r in recs} == {RewardDomain.STEM_MCQA}
    assert m["bad_rows"]["count"] == 4 and bad_row_lines(m) == ["a.jsonl:6", "a.jsonl:7", "a.jsonl:8", "a.jsonl:9"]
    assert step(m, "filter")["dropped"] == {"duplicate_options": 1}
    assert sum("skipping malformed row" in r.message for r in caplog.records) == 4
    assert [r.ground_truth for r in recs] == ["ABCD"[mmlu[i]["answer"]] for i in range(3)] + ["B", "B"]
    first = recs[0].prompt_text
    assert all(f"({k}) {c}" in first for k, c in zip("ABCD", mmlu[0]["choices"])) and "Answer: X" in first
    assert [r.reward_context["num_choices"] for r in recs] == [4, 4, 4, 3, 2]
    gold = [f"<think>\nhmm\n</think>\nAnswer: {r.ground_truth}" for r in recs]
    wrong = [f"Answer: {'B' if r.ground_truth == 'A' else 'A'}" for r in recs]
    got = rewards(RewardDomain.STEM_MCQA, recs + recs + [recs[3]], gold + wrong + ["Answer: D"])  # no option D
    assert got == [1.0] * 5 + [0.0] * 5 + [0.0]


# --- structured -----------------------------------------------------------------------------------
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1},
                                           "mode": {"type": "string", "enum": ["train", "car"]}},
          "required": ["city", "days", "mode"], "additionalProperties": False}


def test_structured_rows_carry_the_schema_to_the_scorer(tmp_path, caplog):
    shown = f"Plan a 3-day train trip to Oslo as JSON matching {json.dumps(SCHEMA)}"
    rows = [{"prompt": "Plan a 3-day train trip to Oslo.", "schema": json.dumps(SCHEMA), "id": 1},
            {"prompt": "Broken schema", "schema": {"type": "nope"}},  # bad: not a JSON Schema
            {"prompt": "Schema text that is not JSON", "schema": "{oops"},  # bad
            {"prompt": "", "schema": SCHEMA}]  # filtered, as in rl_prompts: no user text
    aliased = [{"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": shown}],
                "schema_str": SCHEMA, "id": 2}]  # the schema is already in the prompt: not appended again
    recs, m = run(tmp_path, "structured", rows, aliased)
    assert [r.id for r in recs] == ["structured-1", "structured-2"]
    assert m["bad_rows"]["count"] == 3 and bad_row_lines(m) == ["a.jsonl:2", "a.jsonl:3", "a.jsonl:5"]
    assert step(m, "filter")["dropped"] == {"no_user_turn": 1}
    assert sum("skipping malformed row" in r.message for r in caplog.records) == 3
    assert all(r.reward_context["schema"] == SCHEMA and r.domain == RewardDomain.STRUCTURED_OUTPUT for r in recs)
    assert '"additionalProperties": false' in recs[0].prompt_text and recs[1].prompt_text == shown
    assert recs[1].prompt[0] == {"role": "system", "content": "Be terse."}
    gold = '{"city": "Oslo", "days": 3, "mode": "train"}'
    wrong = ['{"city": "Oslo", "days": 3}', '{"city": "Oslo", "days": 0, "mode": "train"}',
             '{"city": "Oslo", "days": 3, "mode": "plane"}', '{"city": "Oslo", "days": 3, "mode": "car", "x": 1}']
    both = [recs[0], recs[1]] + [recs[0]] * len(wrong)
    got = rewards(RewardDomain.STRUCTURED_OUTPUT, both, [gold, f"<think>ok</think>\n```json\n{gold}\n```", *wrong])
    assert got == [1.0, 1.0] + [0.0] * len(wrong)


# --- tools ----------------------------------------------------------------------------------------
DB = {"employees": {"emp-1": {"name": "Ana Lima", "email": "ana@corp.example"},
                    "emp-2": {"name": "Raj Patel", "email": "raj@corp.example"}},
      "tasks": {"task-1": {"title": "Report", "assignee": "ana@corp.example", "status": "todo", "due": None}}}
DONE = [{"name": "update_task", "arguments": {"task_id": "task-1", "status": "done"}}]
MAIL = [{"name": "send_email", "arguments": {"to": "raj@corp.example", "subject": "Hi", "body": "Report done."}}]


def _state_after(calls):
    from cascade.rewards.tool_calling.workplace import replay

    return replay(DB, [(c["name"], c["arguments"]) for c in calls])


@pytest.mark.parametrize("syntax,render", [("xml", c2_call), ("json", c1_call)])
def test_tool_rows_list_the_tools_and_replay_to_the_expected_state(tmp_path, caplog, syntax, render):
    rows = [{"prompt": "Mark task-1 done.", "initial_state": DB, "calls": DONE, "expected_state": None, "id": "a"},
            {"prompt": "Both.", "initial_state": DB, "calls": json.dumps(DONE + MAIL),
             "expected_state": _state_after(DONE + MAIL), "id": "c"},
            {"prompt": "Nothing to do.", "initial_state": DB, "expected_state": DB},  # filtered: no change
            {"prompt": "Mismatch.", "initial_state": DB, "calls": DONE, "expected_state": _state_after(MAIL)},  # bad
            {"prompt": "Unknown tool.", "initial_state": DB, "calls": [{"name": "rm_rf", "arguments": {}}]},  # bad
            {"prompt": "Odd DB.", "initial_state": {"users": {}}, "calls": DONE},  # bad: not a workplace DB
            {"prompt": "No target.", "initial_state": DB}]  # bad: neither expected_state nor calls
    aliased = [{"task": "Tell Raj the report is done.", "database": json.dumps(DB),
                "final_state": _state_after(MAIL), "id": "b"}]
    recs, m = run(tmp_path, "tools", rows, aliased, "--call-syntax", syntax)
    assert [r.id for r in recs] == ["tools-a", "tools-c", "tools-b"]  # the files in name order
    assert m["bad_rows"]["count"] == 5 and bad_row_lines(m) == [f"a.jsonl:{i}" for i in range(4, 9)]
    assert sum("skipping malformed row" in r.message for r in caplog.records) == 5
    assert step(m, "filter")["dropped"] == {"no_state_change": 1}
    system = recs[0].prompt[0]
    assert system["role"] == "system" and recs[0].prompt[1]["role"] == "user"
    example = render(ToolCall("update_task", {"task_id": "task-7", "status": "done"}))
    assert example in system["content"] and "send_email(to:" in system["content"] and "raj@corp.example" in system["content"]
    assert recs[0].reward_context["expected_state"]["tasks"]["task-1"]["status"] == "done"
    gold = {"a": DONE, "b": MAIL, "c": DONE + MAIL}

    def say(calls):
        return "\n".join(render(ToolCall(c["name"], c["arguments"])) for c in calls)

    right = [say(gold[r.id.split("-")[1]]) for r in recs]
    wrong = ["I updated it.", example, say(DONE)]  # (a, c, b): no call, the example's unknown task, the wrong change
    assert rewards(RewardDomain.TOOL_CALLING, recs + recs, right + wrong) == [1.0] * 3 + [0.0] * 3


def test_tools_subset_lists_only_those_tools_and_drops_tasks_that_need_another(tmp_path):
    db7 = {**DB, "tasks": {"task-7": DB["tasks"]["task-1"]}}
    rows = [{"prompt": "Mark task-1 done.", "initial_state": DB, "calls": DONE, "id": "a"},
            {"prompt": "Mail Raj.", "initial_state": DB, "calls": MAIL, "id": "b"},
            {"prompt": "Mark task-7 done.", "initial_state": db7,  # what the system turn's example call does
             "calls": [{"name": "update_task", "arguments": {"task_id": "task-7", "status": "done"}}], "id": "c"}]
    recs, m = run(tmp_path, "tools", rows, [], "--tools", "update_task", "--no-state", "--call-syntax", "json")
    assert [r.id for r in recs] == ["tools-a"]
    assert step(m, "filter")["dropped"] == {"unlisted_tool": 1, "example_solves": 1}
    system = recs[0].prompt[0]["content"]
    assert "- update_task(task_id: string" in system and "send_email" not in system and "ana@corp" not in system
    with pytest.raises(SystemExit):
        c2_prompts.main(["tools", "--input", "x", "--out-dir", str(tmp_path), "--tools", "rm_rf"])


# --- long context ---------------------------------------------------------------------------------
@pytest.fixture
def judge():
    """A local chat endpoint that grades as the long-context judge is asked to: YES when the candidate's
    last number is the reference answer's. It sees only what the scorer sends it."""
    seen: list[str] = []

    class Judge(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = body["messages"][1]["content"]
            seen.append(user)
            ref = re.search(r"<reference_answer>\n(.*?)\n</reference_answer>", user, re.S).group(1)
            cand = re.search(r"<candidate_answer>\n(.*?)\n</candidate_answer>", user, re.S).group(1)
            nums = re.findall(r"-?\d[\d,]*\.?\d*", cand)
            ok = bool(nums) and nums[-1].replace(",", "").rstrip(".") == ref.strip()
            data = json.dumps({"choices": [{"message": {"content": "YES" if ok else "NO"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def lc_rewards(url: str, records, responses) -> list[float]:
    return rewards(RewardDomain.LONG_CONTEXT_QA, records, responses, judge=ServedModelConfig(endpoint=url, name="j"))


def test_long_context_rows_reach_the_judge_with_question_and_reference(tmp_path, caplog, judge, smollm2_dir):
    docs = ["The lighthouse on Vale Island has 212 steps.", {"title": "Ferries", "text": "Two ferries run daily."}]
    rows = [{"documents": docs, "question": "How many steps does the lighthouse have?", "answer": 212, "id": 1},
            {"documents": ["x " * 900], "question": "Long?", "answer": "1"},  # filtered: over the token limit
            {"question": "What?", "answer": "3"},  # bad: no documents, no prompt
            {"documents": "text", "question": "Q?", "answer": ""},  # bad: empty answer
            {"documents": [{"title": "t"}], "question": "Q?", "answer": "2"}]  # bad: a document without text
    aliased = [{"messages": [{"role": "user", "content": "Doc: the bridge is 40 m long.\nHow long is the bridge (m)?"}],
                "query": "How long is the bridge (m)?", "reference_answer": "40", "id": 2}]
    recs, m = run(tmp_path, "long_context", rows, aliased, "--tokenizer", str(smollm2_dir), "--max-prompt-tokens", "300")
    assert [r.id for r in recs] == ["lc-1", "lc-2"] and [r.ground_truth for r in recs] == ["212", "40"]
    assert m["bad_rows"]["count"] == 4 and step(m, "filter")["dropped"] == {"too_long": 1}
    assert sum("skipping malformed row" in r.message for r in caplog.records) == 4
    assert "<document index=2>\nFerries\nTwo ferries run daily." in recs[0].prompt_text
    assert recs[0].prompt_text.endswith("Question: How many steps does the lighthouse have?\nGive a short final answer.")
    url, seen = judge
    got = lc_rewards(url, recs + recs, ["<think>count</think>It has 212 steps.", "40", "It has 200 steps.", "41"])
    assert got == [1.0, 1.0, 0.0, 0.0]
    first = next(x for x in seen if "How many steps" in x)  # the judge calls run concurrently
    assert "<reference_answer>\n212\n" in first and not any("Vale Island" in x for x in seen)  # never the document


# --- the toy C2 sets ------------------------------------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_toy_c2_builds_into_a_c1_toy_dir_and_every_gold_answer_scores(tmp_path, offline, smollm2_dir, judge):
    out = tmp_path / "data"
    build_toy(out, SMALL)
    cfg = ToyC2Config(mcqa=12, structured=10, tools=10, long_context=6)
    summary = build_toy_c2(out, cfg)
    assert load_json(out / "rl_c2" / "manifest.json") == summary
    assert {k: v["train.parquet"] for k, v in summary["products"].items()} == \
        {"mcqa": 12, "structured": 10, "tools": 10, "long_context": 6}
    recs = {s: read_rl_records(out / "rl_c2" / s / "train.parquet") for s in SETS}
    raw = {s: [json.loads(x) for x in (out / "raw_c2" / s / "rows.jsonl").read_text().splitlines()] for s in SETS}

    def gold(r):  # the raw row a record came from: its `origin` is "file row N"
        return raw_of(r)["gold"]

    def raw_of(r):
        return raw[next(s for s in SETS if f"/raw_c2/{s}/" in r.metadata["origin"])][int(r.metadata["origin"].rsplit(" ", 1)[1]) - 1]

    # MMLU val/dev only (a generic stem such as "Which of the following is true?" recurs in test, the item does not)
    test_items = {(r["question"], tuple(r["choices"])) for r in offline.mmlu("test")}
    assert not any((raw_of(r)["question"], tuple(raw_of(r)["options"])) in test_items for r in recs["mcqa"])
    mc = recs["mcqa"]
    assert rewards(RewardDomain.STEM_MCQA, mc + mc, [gold(r) for r in mc] +
                   [f"Answer: {'B' if r.ground_truth == 'A' else 'A'}" for r in mc]) == [1.0] * 12 + [0.0] * 12
    st = recs["structured"]
    for r in st:
        props = r.reward_context["schema"]["properties"]
        assert 2 <= len(props) <= 4 and r.reward_context["schema"]["additionalProperties"] is False
        assert 1 <= sum("enum" in p or "minimum" in p for p in props.values()) <= 2
        assert sorted(r.reward_context["schema"]["required"]) == sorted(props)
    assert all("Schema" not in r.prompt_text and "Reply with only a JSON object with the keys" in r.prompt_text for r in st)
    missing = [json.dumps(dict(list(json.loads(gold(r)).items())[:-1])) for r in st]
    assert rewards(RewardDomain.STRUCTURED_OUTPUT, st + st, [gold(r) for r in st] + missing) == [1.0] * 10 + [0.0] * 10
    tl = recs["tools"]
    assert all('{"name": "update_task"' in r.prompt[0]["content"] for r in tl)  # the toy shows the JSON syntax
    assert rewards(RewardDomain.TOOL_CALLING, tl + tl, [gold(r) for r in tl] + ["Done."] * 10) == [1.0] * 10 + [0.0] * 10
    lc = recs["long_context"]
    from data_prep.tokens import TokenCounter

    counter = TokenCounter(smollm2_dir)
    assert all(300 <= counter.prompt_tokens(r.prompt) <= 700 for r in lc)
    held_out = [q["question"] for q in offline.gsm8k_test() if int(q["id"]) > 999]
    assert not any(q in r.prompt_text for r in lc for q in held_out)
    assert all(r.prompt_text.count("Problem ") >= 2 for r in lc)
    url, _ = judge
    wrong = [f"The final answer is {int(float(r.ground_truth)) + 1}." for r in lc]
    assert lc_rewards(url, lc + lc, [gold(r) for r in lc] + wrong) == [1.0] * 6 + [0.0] * 6

    before = {s: _sha(out / "rl_c2" / s / "train.parquet") for s in SETS}
    build_toy_c2(out, cfg)  # idempotent: the same rows again
    assert {s: _sha(out / "rl_c2" / s / "train.parquet") for s in SETS} == before
    assert (out / "rl_c2" / "manifest.json").is_file()


def test_toy_c2_refuses_a_dir_without_the_c1_toy_data(tmp_path, capsys):
    assert toy_c2_main([str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "python -m data_prep.toy" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "nothing" / "rl_c2").exists()
