"""Workplace-assistant tool-calling reward (C2 multi-domain RL; the Nano-3 recipe it reuses scores
by executing the calls and comparing database states).

`workplace` holds the in-memory database (employees, calendar events, emails, tasks as plain
dicts) and the whitelisted tools, each a pure function of (state, validated arguments); `parse`
reads the calls from a response in either template's syntax (`cascade.data.tool_syntax`);
`reward` replays them in order on a copy of the row's `initial_state` and pays 1 only if the final
state equals `expected_state`. Nothing but the whitelisted functions ever runs: tool names are
dictionary keys, arguments are data.
"""
