"""The workplace database and its whitelisted tools.

State: `{"employees": {id: {...}}, "events": {id: {...}}, "emails": {id: {...}}, "tasks": {id: {...}}}`,
all JSON values. Employees are read-only reference data (`name`, `email`, `department`, ...);
the tools create, change or delete events, emails and tasks. New records get the id
`<prefix><n>` with n one above the largest number already used under that prefix, so replaying the
same calls on the same state always gives the same ids (data_prep builds `expected_state` by
calling `replay` with the gold calls). Deleting the highest-numbered record frees its id for the
next create; only the final state is compared, so this is consistent for gold and policy alike.

Each tool validates and normalises its arguments (unknown or missing parameters, wrong types,
unknown ids or people are a `ToolError`) and returns the new state; lists of people are stored
sorted and de-duplicated and times as `YYYY-MM-DDTHH:MM`, so equivalent calls give equal states.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TABLES = ("employees", "events", "emails", "tasks")
TASK_STATUSES = ("todo", "in_progress", "done")
MAX_TEXT = 4000  # characters in one string argument
MAX_ITEMS = 50  # people in one list argument

State = dict[str, dict[str, dict[str, Any]]]


class ToolError(ValueError):
    """A call the database refuses: bad arguments, an unknown id or person."""


class StateError(ValueError):
    """A row's state that is not a workplace database."""


def normalize_state(state: Any, what: str = "state") -> State:
    """A deep copy of `state` with every table present; StateError if its shape is wrong."""
    if not isinstance(state, Mapping):
        raise StateError(f"{what} is a {type(state).__name__}, not an object")
    unknown = sorted(set(state) - set(TABLES))
    if unknown:
        raise StateError(f"{what} has unknown table(s) {unknown}; expected {list(TABLES)}")
    out: State = {}
    for table in TABLES:
        rows = state.get(table) or {}
        if not isinstance(rows, Mapping) or not all(isinstance(k, str) and isinstance(v, Mapping)
                                                     for k, v in rows.items()):
            raise StateError(f"{what}.{table} must map ids to objects")
        out[table] = copy.deepcopy({k: dict(v) for k, v in rows.items()})
    return out


# ---- argument types: (value, raw) -> normalised value; raw means the XML syntax's plain text ----

def _text(value: Any, raw: bool) -> str:
    if not isinstance(value, str):
        raise ToolError(f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ToolError(f"string longer than {MAX_TEXT} characters")
    return value


def _nonempty(value: Any, raw: bool) -> str:
    text = _text(value, raw).strip()
    if not text:
        raise ToolError("expected a non-empty string")
    return text


def _people(value: Any, raw: bool) -> list[str]:
    if raw and isinstance(value, str):
        value = _json_list(value) if value.lstrip().startswith("[") else [value]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ToolError("expected an email address or a non-empty list of them")
    if len(value) > MAX_ITEMS:
        raise ToolError(f"more than {MAX_ITEMS} people")
    return sorted({_nonempty(v, False).lower() for v in value})


def _json_list(text: str) -> Any:
    if len(text) > MAX_TEXT * 4 or text.count("[") > 4:
        raise ToolError("list argument too large or too deeply nested")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ToolError("list argument is not a JSON list") from None


def _minute(value: Any, raw: bool) -> str:
    text = _nonempty(value, raw)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(f"{text[:40]!r} is not a date-time like 2025-03-04T14:30") from None
    if t.tzinfo is not None or t.second or t.microsecond:
        raise ToolError(f"{text[:40]!r}: use local time to the minute, without a time zone")
    return t.isoformat(timespec="minutes")


def _day(value: Any, raw: bool) -> str:
    text = _nonempty(value, raw)
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ToolError(f"{text[:40]!r} is not a date like 2025-03-04") from None


def _status(value: Any, raw: bool) -> str:
    text = _nonempty(value, raw)
    if text not in TASK_STATUSES:
        raise ToolError(f"status must be one of {list(TASK_STATUSES)}")
    return text


ArgType = Callable[[Any, bool], Any]


@dataclass(frozen=True)
class Tool:
    fn: Callable[[State, dict[str, Any]], State]
    required: Mapping[str, ArgType]
    optional: Mapping[str, ArgType]
    description: str

    def arguments(self, args: Any, raw: bool) -> dict[str, Any]:
        if not isinstance(args, Mapping):
            raise ToolError(f"arguments must be an object, got {type(args).__name__}")
        unknown = sorted(str(k)[:40] for k in args if k not in self.required and k not in self.optional)
        if unknown:
            raise ToolError(f"unknown argument(s) {unknown}")
        missing = [k for k in self.required if args.get(k) is None]
        if missing:
            raise ToolError(f"missing argument(s) {missing}")
        out = {}
        for name, kind in {**self.required, **self.optional}.items():
            if args.get(name) is not None:
                try:
                    out[name] = kind(args[name], raw)
                except ToolError as e:
                    raise ToolError(f"argument {name!r}: {e}") from None
        return out


def _next_id(rows: Mapping[str, Any], prefix: str) -> str:
    used = [int(m.group(1)) for k in rows if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", k))]
    return f"{prefix}{max(used, default=0) + 1}"


def _known_people(state: State, people: Sequence[str]) -> None:
    known = {str(e.get("email", "")).lower() for e in state["employees"].values()}
    strangers = [p for p in people if p not in known]
    if strangers:
        raise ToolError(f"no employee with email {strangers[:3]}")


def _row(state: State, table: str, row_id: str) -> dict[str, Any]:
    if row_id not in state[table]:
        raise ToolError(f"no {table[:-1]} with id {row_id[:40]!r}")
    return state[table][row_id]


def lookup_employee(state: State, a: dict[str, Any]) -> State:
    """Read-only: find an employee by name or email (the replay only checks the call is valid)."""
    if "name" not in a and "email" not in a:
        raise ToolError("give a name or an email")
    return state


def create_event(state: State, a: dict[str, Any]) -> State:
    if a["end"] <= a["start"]:
        raise ToolError("the event must end after it starts")
    _known_people(state, a["attendees"])
    eid = _next_id(state["events"], "event-")
    state["events"][eid] = {"title": a["title"], "start": a["start"], "end": a["end"],
                            "attendees": a["attendees"], "location": a.get("location", "")}
    return state


def update_event(state: State, a: dict[str, Any]) -> State:
    event = _row(state, "events", a["event_id"])
    for key in ("title", "start", "end", "location", "attendees"):
        if key in a:
            event[key] = a[key]
    if event["end"] <= event["start"]:
        raise ToolError("the event must end after it starts")
    _known_people(state, event["attendees"])
    return state


def delete_event(state: State, a: dict[str, Any]) -> State:
    _row(state, "events", a["event_id"])
    del state["events"][a["event_id"]]
    return state


def send_email(state: State, a: dict[str, Any]) -> State:
    _known_people(state, a["to"])
    mid = _next_id(state["emails"], "email-")
    state["emails"][mid] = {"to": a["to"], "subject": a["subject"], "body": a["body"]}
    return state


def create_task(state: State, a: dict[str, Any]) -> State:
    assignee = a["assignee"].lower()
    _known_people(state, [assignee])
    tid = _next_id(state["tasks"], "task-")
    state["tasks"][tid] = {"title": a["title"], "assignee": assignee, "status": "todo", "due": a.get("due")}
    return state


def update_task(state: State, a: dict[str, Any]) -> State:
    task = _row(state, "tasks", a["task_id"])
    if len(a) == 1:
        raise ToolError("nothing to update: give status, assignee or due")
    if "assignee" in a:
        a["assignee"] = a["assignee"].lower()
        _known_people(state, [a["assignee"]])
    for key in ("status", "assignee", "due"):
        if key in a:
            task[key] = a[key]
    return state


def delete_task(state: State, a: dict[str, Any]) -> State:
    _row(state, "tasks", a["task_id"])
    del state["tasks"][a["task_id"]]
    return state


TOOLS: dict[str, Tool] = {
    "lookup_employee": Tool(lookup_employee, {}, {"name": _nonempty, "email": _nonempty},
                            "Find an employee by name or email."),
    "create_event": Tool(create_event, {"title": _nonempty, "start": _minute, "end": _minute, "attendees": _people},
                         {"location": _text}, "Create a calendar event."),
    "update_event": Tool(update_event, {"event_id": _nonempty},
                         {"title": _nonempty, "start": _minute, "end": _minute, "attendees": _people,
                          "location": _text}, "Change fields of a calendar event."),
    "delete_event": Tool(delete_event, {"event_id": _nonempty}, {}, "Delete a calendar event."),
    "send_email": Tool(send_email, {"to": _people, "subject": _text, "body": _text}, {}, "Send an email."),
    "create_task": Tool(create_task, {"title": _nonempty, "assignee": _nonempty}, {"due": _day}, "Create a task."),
    "update_task": Tool(update_task, {"task_id": _nonempty},
                        {"status": _status, "assignee": _nonempty, "due": _day}, "Change a task."),
    "delete_task": Tool(delete_task, {"task_id": _nonempty}, {}, "Delete a task."),
}


def apply_call(state: State, name: Any, arguments: Any, raw: bool = False) -> State:
    """`state` after one whitelisted call (mutated in place and returned); ToolError if refused."""
    tool = TOOLS.get(name) if isinstance(name, str) else None
    if tool is None:
        raise ToolError(f"unknown tool {str(name)[:60]!r}; known: {sorted(TOOLS)}")
    return tool.fn(state, tool.arguments(arguments, raw))


def replay(initial_state: Any, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> State:
    """The state after `calls` ((name, arguments) pairs, JSON-typed) on a copy of `initial_state`;
    how data_prep derives `expected_state` from gold calls. Raises ToolError or StateError."""
    state = normalize_state(initial_state, "initial_state")
    for name, arguments in calls:
        state = apply_call(state, name, arguments)
    return state
