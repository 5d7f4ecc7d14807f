"""Assert code as plain calls and checks, and plain values across the sandbox boundary."""

from __future__ import annotations

import ast
import json
import struct

import pytest

import cascade.offline as off
from cascade.rewards.code import seccomp
from cascade.rewards.code.assert_tests import Unconvertible, convert, defined_names, evaluate
from cascade.rewards.code.filesystem import bwrap_mounts
from cascade.rewards.code.plain import NotPlain, decode


def test_mbpp_and_humaneval_asserts_convert():
    calls, checks = convert("import math\nassert math.isclose(f(2), 12.56, rel_tol=0.01)\n"
                            "assert set(f(1)) == set((1, 2))\nassert f(x=3) is None\n")
    assert [(c.fn, c.args, c.kwargs) for c in calls] == [("f", (2,), ()), ("f", (1,), ()), ("f", (), (("x", 3),))]
    assert [ast.unparse(c.expr) for c in checks] == [
        "math.isclose(__r0, 12.56, rel_tol=0.01)", "set(__r1) == set((1, 2))", "__r2 is None"]
    assert evaluate(checks[0], {0: 12.57}) and not evaluate(checks[0], {0: 13.0})
    assert evaluate(checks[1], {1: [2, 1]}) and not evaluate(checks[1], {1: [2]})
    he = off.humaneval()[44]  # a loop over range(2, 8), unrolled with the loop variable bound
    calls, checks = convert(he["test"], he["entry_point"])
    assert calls[-1].fn == he["entry_point"] and calls[-1].args == (7, 8)
    assert ast.unparse(checks[-1].expr) == "__r11 == str(7)"


def test_check_of_candidate_maps_to_the_entry_point():
    calls, _ = convert("def check(candidate):\n    assert candidate(1) == 2\n\ncheck(inc)\n", "inc")
    assert calls[0].fn == "inc"


def test_program_defined_names_shadow_builtins():
    with pytest.raises(Unconvertible):  # `sum(10, 15)` is the builtin: the assert fails on its own
        convert("assert sum(10, 15) == 6")
    calls, _ = convert("assert sum(10, 15) == 6", None, defined_names("def sum(a, b):\n    return 6"))
    assert calls[0].fn == "sum"


@pytest.mark.parametrize("code,why", [
    ("", "empty"), ("assert True", "no assertion"), ("import random\nassert f(random.random()) == 1", "random"),
    ("assert f(g(1)) == 2", "argument"), ("assert f(1) == helper(1)", "several program functions"),
    ("x = f(1)\nassert x == 2", "line 1"), ("while True:\n    assert f(1)", "While"),
    ("assert f(1).upper() == 'A'", "upper"), ("assert sorted(f(1), key=lambda x: -x) == [1]", "Lambda"),
    ("def check(c):\n    for i in range(10 ** 6):\n        assert c(i)\n", "iterations"),
])
def test_unconvertible_shapes_say_why(code, why):
    with pytest.raises(Unconvertible, match=why):
        convert(code)


def test_evaluation_errors_fail_the_check():
    _, checks = convert("assert len(f(1)) == 2\nassert f(2) < 3\n")
    assert not evaluate(checks[0], {0: 5})  # len() of an int raises: the assert would have failed
    assert not evaluate(checks[1], {1: "x"})
    _, checks = convert("assert f(1) == 2 ** 10 ** 10\nassert f(2) * 10 ** 9 == 1\n")
    assert not evaluate(checks[0], {0: 1})  # too large to compute: refused, so the check fails
    assert not evaluate(checks[1], {1: "x" * 100})  # a string times 1e9 is not built


def test_plain_values_decode_to_fresh_builtins():
    text = json.dumps([1, {"t": [1, 2]}, {"s": [3]}, {"f": []}, {"d": [[{"t": [1]}, "v"]]},
                       {"i": format(3 ** 200, "x")}, {"c": [1.0, -2.0]}, None, True, "s", 1.5])
    assert decode(text) == [1, (1, 2), {3}, frozenset(), {(1,): "v"}, 3 ** 200, complex(1, -2), None, True, "s", 1.5]
    for bad in ('{"x": 1}', '{"t": 1}', '{"d": [[[1], 2]]}', "[" * 100_000, "1" * 10_000, "", "{'a': 1}"):
        with pytest.raises(NotPlain):
            decode(bad)


def test_seccomp_filter_layout():
    for machine in ("x86_64", "aarch64"):
        prog = seccomp.build(machine)
        insns = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
        deny, allow = len(insns) - 1, len(insns) - 2
        assert insns[deny] == (0x06, 0, 0, 0x00050000 | 1) and insns[allow] == (0x06, 0, 0, 0x7FFF0000)
        for i, (code, jt, jf, k) in enumerate(insns[:allow]):
            if code == 0x15 or code == 0x35:  # every conditional jump lands on `deny` or falls through
                assert i + 1 + (jt or jf) == deny, (machine, i)
        col = 0 if machine == "x86_64" else 1
        denied = {k for code, jt, _, k in insns if code == 0x15 and jt}
        assert {nrs[col] for nrs in seccomp.DENIED.values()} <= denied
    assert seccomp.build("riscv64") is None


def test_sandbox_file_system_is_an_allow_list():
    exe, args = bwrap_mounts("/usr/bin/python3")
    binds = [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]
    assert "/" not in binds and not any(b.startswith(("/work", "/root", "/home", "/var", "/usr/local", "/usr/share"))
                                        for b in binds if not b.startswith(exe))
    masked = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert all(args[args.index(m, args.index("--tmpfs")) + 2] == m for m in masked)  # each followed by --remount-ro
