"""tool_calling reward: the response's calls replayed on the initial workplace state must give the
expected state; only whitelisted pure tools ever run."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cascade.config.schema.rl import RewardConfig, RewardDomain
from cascade.data.messages import ToolCall
from cascade.data.tool_syntax import c1_call, c2_call
from cascade.rewards.registry import build_scorer
from cascade.rewards.tool_calling.parse import parse_calls
from cascade.rewards.tool_calling.reward import MAX_CALLS, score_row
from cascade.rewards.tool_calling.workplace import TOOLS, ToolError, replay

REPO = Path(__file__).resolve().parents[2]
INITIAL = {
    "employees": {
        "emp-1": {"name": "Ana Lima", "email": "ana@corp.example", "department": "sales"},
        "emp-2": {"name": "Raj Patel", "email": "raj@corp.example", "department": "engineering"},
        "emp-3": {"name": "Li Wei", "email": "li@corp.example", "department": "engineering"},
    },
    "events": {"event-1": {"title": "Standup", "start": "2025-03-04T09:00", "end": "2025-03-04T09:15",
                           "attendees": ["li@corp.example", "raj@corp.example"], "location": ""}},
    "emails": {},
    "tasks": {"task-1": {"title": "Quarterly report", "assignee": "ana@corp.example", "status": "todo",
                         "due": "2025-03-31"}},
}
# Task: "Move the report task to Raj, mark it in progress, then invite Raj and Li to a review and tell Raj."
GOLD = [
    ("update_task", {"task_id": "task-1", "assignee": "raj@corp.example"}),
    ("update_task", {"task_id": "task-1", "status": "in_progress"}),
    ("create_event", {"title": "Report review", "start": "2025-03-05T14:00", "end": "2025-03-05T15:00",
                      "attendees": ["raj@corp.example", "li@corp.example"]}),
    ("send_email", {"to": "raj@corp.example", "subject": "Report", "body": "The report is yours now."}),
]
EXPECTED = replay(INITIAL, GOLD)


def as_c1(calls) -> str:
    return "\n".join(c1_call(ToolCall(name, args)) for name, args in calls)


def as_c2(calls) -> str:
    return "\n".join(c2_call(ToolCall(name, args)) for name, args in calls)


def score(response: str, initial=INITIAL, expected=EXPECTED):
    return score_row({"response": response, "initial_state": initial, "expected_state": expected})


def test_expected_state_is_what_the_gold_calls_do():
    assert EXPECTED["tasks"]["task-1"] == {"title": "Quarterly report", "assignee": "raj@corp.example",
                                           "status": "in_progress", "due": "2025-03-31"}
    assert EXPECTED["events"]["event-2"]["attendees"] == ["li@corp.example", "raj@corp.example"]
    assert list(EXPECTED["emails"]) == ["email-1"]
    assert INITIAL["emails"] == {}  # replay never touches its input


@pytest.mark.parametrize("render", [as_c1, as_c2], ids=["cascade1_json", "cascade2_xml"])
def test_the_right_calls_earn_one_in_both_template_syntaxes(render):
    response = "<think>Reassign, update, invite, email.</think>\n" + render(GOLD)
    r = score(response)
    assert r.reward == 1.0 and r.info["reason"] == "expected_state", r.info
    assert r.info["calls"] == [name for name, _ in GOLD]


def test_equivalent_spellings_reach_the_same_state():
    calls = copy.deepcopy(GOLD)
    calls[2][1].update(start="2025-03-05 14:00", attendees=["LI@corp.example", "raj@corp.example", "li@corp.example"])
    calls[3][1]["to"] = ["raj@corp.example"]
    assert score(as_c1(calls)).reward == 1.0
    assert score(as_c1([("lookup_employee", {"name": "Raj"}), *GOLD])).reward == 1.0  # read-only calls are free


def test_states_may_be_json_text():
    r = score_row({"response": as_c1(GOLD), "initial_state": json.dumps(INITIAL), "expected_state": json.dumps(EXPECTED)})
    assert r.reward == 1.0


def test_order_matters_where_it_changes_the_state():
    wrong = [GOLD[1], GOLD[0], GOLD[3], GOLD[2]]  # swapping independent pairs is fine ...
    assert score(as_c1(wrong)).reward == 1.0
    # ... but changing an event before creating it is not
    move = ("update_event", {"event_id": "event-2", "start": "2025-03-05T16:00", "end": "2025-03-05T17:00"})
    expected = replay(INITIAL, [*GOLD, move])
    assert score(as_c1([*GOLD, move]), expected=expected).reward == 1.0
    r = score(as_c1([GOLD[0], GOLD[1], move, GOLD[2], GOLD[3]]), expected=expected)
    assert r.reward == 0.0 and r.info["reason"] == "tool_error" and "no event with id 'event-2'" in r.info["detail"]
    # nor is setting the same field twice in the other order
    done = [("update_task", {"task_id": "task-1", "status": "in_progress"}),
            ("update_task", {"task_id": "task-1", "status": "done"})]
    expected = replay(INITIAL, done)
    assert score(as_c1(done), expected=expected).reward == 1.0
    assert score(as_c1(done[::-1]), expected=expected).info["diff"] == ["tasks"]
    # two emails in the other order get each other's ids
    two = [("send_email", {"to": "ana@corp.example", "subject": "a", "body": "1"}),
           ("send_email", {"to": "li@corp.example", "subject": "b", "body": "2"})]
    expected = replay(INITIAL, two)
    assert score(as_c1(two), expected=expected).reward == 1.0
    r = score(as_c1(two[::-1]), expected=expected)
    assert r.reward == 0.0 and r.info["reason"] == "wrong_state" and r.info["diff"] == ["emails"]


def test_an_extra_harmful_call_earns_zero():
    r = score(as_c1([*GOLD, ("delete_event", {"event_id": "event-1"})]))
    assert r.reward == 0.0 and r.info["reason"] == "wrong_state" and r.info["diff"] == ["events"]


def test_missing_calls_and_no_calls_earn_zero():
    assert score(as_c1(GOLD[:-1])).info["diff"] == ["emails"]
    r = score("I have reassigned the task and sent the invite.")
    assert r.reward == 0.0 and r.info["reason"] == "wrong_state"
    assert score("Nothing to do.", expected=INITIAL).reward == 1.0  # a task that needs no change
    assert score("<think>" + as_c1(GOLD)).info["reason"] == "unparsable_calls"  # calls inside thinking only


@pytest.mark.parametrize("call,needle", [
    (("drop_database", {}), "unknown tool 'drop_database'"),
    (("__import__('os').system", {"command": "touch /tmp/pwned"}), "unknown tool"),
    (("send_email", {"to": "raj@corp.example", "subject": "x"}), "missing argument(s) ['body']"),
    (("send_email", {"to": "raj@corp.example", "subject": "x", "body": "y", "bcc": "z"}), "unknown argument(s)"),
    (("send_email", {"to": "mallory@evil.example", "subject": "x", "body": "y"}), "no employee with email"),
    (("update_task", {"task_id": "task-1", "status": "finished"}), "status must be one of"),
    (("update_task", {"task_id": "task-1"}), "nothing to update"),
    (("create_event", {"title": "x", "start": "tomorrow", "end": "2025-03-05T15:00",
                       "attendees": ["raj@corp.example"]}), "not a date-time"),
    (("create_event", {"title": "x", "start": "2025-03-05T15:00", "end": "2025-03-05T14:00",
                       "attendees": ["raj@corp.example"]}), "end after it starts"),
    (("create_task", {"title": 7, "assignee": "raj@corp.example"}), "expected a string"),
])
def test_unknown_tools_and_bad_arguments_earn_zero(call, needle):
    r = score(as_c1([GOLD[0], call]))
    assert r.reward == 0.0 and r.info["reason"] == "tool_error" and r.info["call"] == 2
    assert needle in r.info["detail"], r.info


def test_code_smuggled_in_arguments_is_only_data(tmp_path, monkeypatch):
    sentinel = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {sentinel}')"
    import os
    import subprocess as sp

    def boom(*a, **k):
        raise AssertionError("a tool tried to run something")

    monkeypatch.setattr(os, "system", boom)
    monkeypatch.setattr(sp, "Popen", boom)
    calls = [("send_email", {"to": "raj@corp.example", "subject": payload, "body": "{{7*7}} ${7*7} `id`"}),
             ("create_task", {"title": "x", "assignee": "raj@corp.example", "__class__": {"__init__": payload}}),
             ("update_task", {"task_id": "task-1'); import os; os.system('id"})]
    r = score(as_c1(calls[:1]), expected=replay(INITIAL, calls[:1]))
    assert r.reward == 1.0  # the payload is stored verbatim as the subject, never evaluated
    assert replay(INITIAL, calls[:1])["emails"]["email-1"]["subject"] == payload
    r = score(as_c1(calls[1:2]))
    assert r.reward == 0.0 and "unknown argument(s) ['__class__']" in r.info["detail"]
    r = score(as_c2(calls[2:]))
    assert r.reward == 0.0 and "no task with id" in r.info["detail"]
    assert not sentinel.exists()


@pytest.mark.parametrize("response,needle", [
    ('<tool_call>\n{"name": "send_email", "arguments": {"to": }\n</tool_call>', "not valid JSON"),
    ('<tool_call>\n{"name": "send_email", "arguments": {}, "code": "x"}\n</tool_call>', "expected {"),
    ("<tool_call>\nsend_email(to='raj')\n</tool_call>", "expected <function=NAME>"),
    ('<tool_call>\n{"name": "lookup_employee", "arguments": {"name": "Raj"}}\n', "but 0 </tool_call>"),
    ("<tool_call>\n<function=delete_task>\n<parameter=task_id>\ntask-1\n</parameter>\nrm -rf\n</function>\n"
     "</tool_call>", "text outside <parameter> tags"),
    ('<tool_call>\n{"name": "x", "arguments": ' + "[" * 50 + "]" * 50 + "}\n</tool_call>", "nested deeper"),
])
def test_unparsable_calls_earn_zero(response, needle):
    r = score(response)
    assert r.reward == 0.0 and r.info["reason"] == "unparsable_calls" and needle in r.info["detail"], r.info


def test_too_many_calls_earn_zero():
    many = [("lookup_employee", {"name": "Raj"})] * (MAX_CALLS + 1)
    r = score(as_c1(many), expected=INITIAL)
    assert r.reward == 0.0 and "tool calls (limit" in r.info["detail"]
    assert score(as_c1(many[:MAX_CALLS]), expected=INITIAL).reward == 1.0


@pytest.mark.parametrize("row,needle", [
    ({"response": "x", "initial_state": INITIAL}, "missing field(s): expected_state"),
    ({"response": "x", "initial_state": "{oops", "expected_state": EXPECTED}, "initial_state is not valid JSON"),
    ({"response": "x", "initial_state": {"payroll": {}}, "expected_state": EXPECTED}, "unknown table"),
    ({"response": "x", "initial_state": [], "expected_state": EXPECTED}, "not an object"),
    ({"response": "x", "initial_state": INITIAL, "expected_state": {"tasks": {"t": 1}}}, "must map ids to objects"),
])
def test_bad_rows_are_errors(row, needle):
    r = score_row(row)
    assert r.reward == 0.0 and needle in r.info["error"], r.info


def test_c2_values_are_read_by_the_declared_types():
    calls = parse_calls(as_c2([GOLD[2]]), MAX_CALLS)
    assert calls[0].raw and calls[0].arguments["attendees"] == '["raj@corp.example", "li@corp.example"]'
    assert score(as_c2(GOLD)).reward == 1.0


def test_only_whitelisted_tools_exist():
    assert sorted(TOOLS) == ["create_event", "create_task", "delete_event", "delete_task", "lookup_employee",
                             "send_email", "update_event", "update_task"]
    with pytest.raises(ToolError):
        replay(INITIAL, [("__init__", {})])


def test_batch_scorer_and_cli(tmp_path):
    scorer = build_scorer(RewardConfig(domain=RewardDomain.TOOL_CALLING))
    try:
        rs = scorer.score([{"response": as_c1(GOLD), "initial_state": INITIAL, "expected_state": EXPECTED},
                           {"response": as_c1(GOLD)}])
    finally:
        scorer.close()
    assert [r.reward for r in rs] == [1.0, 0.0] and "error" in rs[1].info
    rows = [{"response": as_c2(GOLD), "initial_state": INITIAL, "expected_state": EXPECTED},
            {"response": as_c1([("rm", {})]), "initial_state": INITIAL, "expected_state": EXPECTED}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = subprocess.run([sys.executable, "-m", "cascade.rewards", "score", "--domain", "tool_calling", str(src),
                        str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [g["reward"] for g in got] == [1.0, 0.0] and got[1]["info"]["reason"] == "tool_error"
