"""Assert-style tests (HumanEval `check(candidate)`, MBPP `assert f(x) == y`) as plain data.

Running a dataset's assert code next to the program would let the program answer every assert:
an object whose `__eq__` returns True, `sys.exit(0)` before the asserts run, or reading the
expected values from the test code in its own memory. So the test code never runs at all. Each
assert is turned into the program calls it makes (function name and constant arguments), which
the sandbox executes, and an expression over the calls' *results* that the scorer evaluates
itself on the plain values the sandbox returns (`safe_eval`). Asserts that do not have that
shape (loops over random inputs, helpers defined in the prompt, comprehensions) raise
`Unconvertible`: the scorer then pays nothing and says why, and `data_prep` drops the problem.
"""

from __future__ import annotations

import ast
import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class Unconvertible(ValueError):
    """The test code has a statement or expression that is not (calls, expression) shaped."""


@dataclass(frozen=True)
class ProgramCall:
    """One call into the program: `fn(*args, **kwargs)`, all arguments plain values."""

    fn: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Check:
    """One assert: `expr` refers to the results of `calls` (indices into the spec's call list)
    through the names `__r<k>`."""

    expr: ast.expr
    calls: tuple[int, ...]
    line: int


_MAX_SEQ = 10_000_000  # elements/characters a single evaluation step may build
_MAX_INT_BITS = 1 << 20
_MAX_LOOP = 1000  # iterations of an unrolled `for` over a constant iterable


def _checked_pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        if b > 0 and a not in (0, 1, -1) and a.bit_length() * b > _MAX_INT_BITS:
            raise OverflowError("power too large")
    return a**b


def _checked_mul(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > _MAX_SEQ:
            raise OverflowError("sequence too large")
    if isinstance(a, int) and isinstance(b, int) and a.bit_length() + b.bit_length() > _MAX_INT_BITS:
        raise OverflowError("product too large")
    return a * b


def _checked_lshift(a: Any, b: Any) -> Any:
    if isinstance(b, int) and b > _MAX_INT_BITS:
        raise OverflowError("shift too large")
    return a << b


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > _MAX_SEQ:
        raise OverflowError("range too large")
    return r


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: _checked_mul,
    ast.Div: lambda a, b: a / b, ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b,
    ast.Pow: _checked_pow, ast.LShift: _checked_lshift, ast.RShift: lambda a, b: a >> b,
    ast.BitAnd: lambda a, b: a & b, ast.BitOr: lambda a, b: a | b, ast.BitXor: lambda a, b: a ^ b,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.Not: lambda a: not a, ast.USub: lambda a: -a, ast.UAdd: lambda a: +a, ast.Invert: lambda a: ~a,
}
# Pure functions of plain values that test code applies to results (never to program objects:
# the sandbox only ever returns plain data).
SAFE_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "len": len, "set": set, "frozenset": frozenset, "sorted": sorted,
    "list": list, "tuple": tuple, "dict": dict, "str": str, "int": int, "float": float, "bool": bool,
    "min": min, "max": max, "sum": sum, "all": all, "any": any, "range": _bounded_range,
    "isinstance": isinstance, "type": type, "reversed": lambda x: list(reversed(x)),
}
SAFE_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "tuple": tuple,
              "dict": dict, "set": set, "frozenset": frozenset}
SAFE_ATTRS: dict[tuple[str, str], Callable[..., Any]] = {
    ("math", "isclose"): math.isclose, ("math", "fabs"): math.fabs, ("math", "floor"): math.floor,
    ("math", "ceil"): math.ceil, ("math", "sqrt"): math.sqrt, ("math", "isnan"): math.isnan,
    ("math", "isinf"): math.isinf, ("copy", "deepcopy"): lambda x: x, ("copy", "copy"): lambda x: x,
}
SAFE_CONSTS = {("math", "pi"): math.pi, ("math", "e"): math.e, ("math", "inf"): math.inf}


def safe_eval(node: ast.expr, env: Mapping[str, Any]) -> Any:
    """Evaluate a test-code expression on plain values; anything outside the whitelist raises
    `Unconvertible` (an evaluation error of the expression itself raises as Python would)."""
    ev = lambda n: safe_eval(n, env)  # noqa: E731
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        if node.id in SAFE_TYPES:
            return SAFE_TYPES[node.id]
        raise Unconvertible(f"unknown name {node.id!r}")
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        if any(isinstance(e, ast.Starred) for e in node.elts):
            raise Unconvertible("starred element")
        items = [ev(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unconvertible("dict unpacking")
        return {ev(k): ev(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](ev(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
    if isinstance(node, ast.BoolOp):
        value = None
        for v in node.values:
            value = ev(v)
            if isinstance(node.op, ast.And) and not value or isinstance(node.op, ast.Or) and value:
                return value
        return value
    if isinstance(node, ast.Compare):
        left = ev(node.left)
        for op, comp in zip(node.ops, node.comparators):
            right = ev(comp)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        out = _comprehension(node.elt, node.generators, dict(env))
        return set(out) if isinstance(node, ast.SetComp) else out
    if isinstance(node, ast.IfExp):
        return ev(node.body) if ev(node.test) else ev(node.orelse)
    if isinstance(node, ast.Subscript):
        return ev(node.value)[ev(node.slice)]
    if isinstance(node, ast.Slice):
        return slice(*(ev(p) if p is not None else None for p in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if (node.value.id, node.attr) in SAFE_CONSTS:
            return SAFE_CONSTS[(node.value.id, node.attr)]
        raise Unconvertible(f"attribute {node.value.id}.{node.attr}")
    if isinstance(node, ast.Call):
        fn = _safe_callable(node.func)
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise Unconvertible("star arguments")
        return fn(*[ev(a) for a in node.args], **{k.arg: ev(k.value) for k in node.keywords})
    raise Unconvertible(f"{type(node).__name__} expression")


def _comprehension(elt: ast.expr, gens: list[ast.comprehension], env: dict[str, Any]) -> list[Any]:
    if not gens:
        return [safe_eval(elt, env)]
    gen, out = gens[0], []
    if not isinstance(gen.target, ast.Name) or gen.is_async:
        raise Unconvertible("comprehension target")
    for value in safe_eval(gen.iter, env):
        env[gen.target.id] = value
        if all(safe_eval(c, env) for c in gen.ifs):
            out.extend(_comprehension(elt, gens[1:], env))
            if len(out) > _MAX_SEQ:
                raise OverflowError("comprehension too large")
    return out


def _safe_callable(func: ast.expr) -> Callable[..., Any]:
    if isinstance(func, ast.Name) and func.id in SAFE_FUNCS:
        return SAFE_FUNCS[func.id]
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        key = (func.value.id, func.attr)
        if key in SAFE_ATTRS:
            return SAFE_ATTRS[key]
    raise Unconvertible(f"call of {ast.unparse(func)}")


_IGNORED_MODULES = {"math", "copy", "typing", "collections", "string"}


class _Converter:
    def __init__(self, entry_point: str | None, program_names: frozenset[str]) -> None:
        self.entry_point = entry_point
        self.program_names = program_names
        self.calls: list[ProgramCall] = []
        self.checks: list[Check] = []
        self.env: dict[str, Any] = {}
        self.check_fn: ast.FunctionDef | None = None

    def is_program_fn(self, name: str, aliases: set[str]) -> bool:
        if name in aliases or name in self.program_names:
            return True
        return name not in SAFE_FUNCS and name not in SAFE_TYPES and name not in self.env

    def statements(self, body: list[ast.stmt], aliases: set[str], top: bool) -> None:
        for st in body:
            where = f"line {st.lineno}"
            if isinstance(st, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in st.names] if isinstance(st, ast.Import) else [st.module or ""]
                if not set(m.split(".")[0] for m in mods) <= _IGNORED_MODULES:
                    raise Unconvertible(f"{where}: import of {', '.join(mods)}")
            elif isinstance(st, ast.Pass) or (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)):
                continue
            elif isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
                try:
                    self.env[st.targets[0].id] = safe_eval(st.value, self.env)
                except Unconvertible as e:
                    raise Unconvertible(f"{where}: {e}") from None
                except Exception as e:  # noqa: BLE001  (the dataset's own expression fails)
                    raise Unconvertible(f"{where}: {type(e).__name__}: {e}") from None
            elif isinstance(st, ast.Assert):
                self.assertion(st, aliases)
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Name):
                continue  # a bare name (`print`): no effect
            elif isinstance(st, ast.For) and isinstance(st.target, ast.Name) and not st.orelse:
                try:
                    values = list(safe_eval(st.iter, self.env))
                except Unconvertible as e:
                    raise Unconvertible(f"{where}: loop: {e}") from None
                if len(values) > _MAX_LOOP:
                    raise Unconvertible(f"{where}: loop of {len(values)} iterations")
                for value in values:  # unrolled: each iteration's asserts become checks
                    self.env[st.target.id] = value
                    self.statements(st.body, aliases, top=False)
            elif top and isinstance(st, ast.FunctionDef) and st.name == "check" and len(st.args.args) == 1:
                self.check_fn = st
            elif top and self._is_check_invocation(st):
                continue
            else:
                raise Unconvertible(f"{where}: {type(st).__name__} statement")

    def _is_check_invocation(self, st: ast.stmt) -> bool:
        return (isinstance(st, ast.Expr) and isinstance(st.value, ast.Call)
                and isinstance(st.value.func, ast.Name) and st.value.func.id == "check")

    def assertion(self, st: ast.Assert, aliases: set[str]) -> None:
        where = f"line {st.lineno}"
        indices: list[int] = []
        bound: set[str] = set()  # comprehension variables are not snapshotted

        def lift(node: ast.AST) -> ast.AST:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and self.is_program_fn(node.func.id, aliases):
                if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                    raise Unconvertible(f"{where}: star arguments to the program")
                try:
                    args = tuple(safe_eval(a, self.env) for a in node.args)
                    kwargs = tuple((k.arg, safe_eval(k.value, self.env)) for k in node.keywords)
                except Unconvertible as e:
                    raise Unconvertible(f"{where}: argument: {e}") from None
                fn = self.entry_point if node.func.id in aliases and self.entry_point else node.func.id
                self.calls.append(ProgramCall(fn, args, kwargs))  # type: ignore[arg-type]
                indices.append(len(self.calls) - 1)
                return ast.copy_location(ast.Name(f"__r{len(self.calls) - 1}", ast.Load()), node)
            if isinstance(node, ast.Name) and node.id in self.env and node.id not in bound:
                return ast.copy_location(ast.Constant(self.env[node.id]), node)  # snapshot (loops)
            if isinstance(node, ast.comprehension) and isinstance(node.target, ast.Name):
                bound.add(node.target.id)
            for field, value in ast.iter_fields(node):
                if isinstance(value, list):
                    setattr(node, field, [lift(v) if isinstance(v, ast.AST) else v for v in value])
                elif isinstance(value, ast.AST):
                    setattr(node, field, lift(value))
            return node

        expr = lift(copy.deepcopy(st.test))  # loops lift the same statement again
        if not indices:
            try:
                holds = safe_eval(expr, self.env)  # `assert True`: no program involved
            except Unconvertible as e:
                raise Unconvertible(f"{where}: {e}") from None
            except Exception as e:  # noqa: BLE001
                raise Unconvertible(f"{where}: the assert fails on its own ({type(e).__name__})") from None
            if holds:
                return
            raise Unconvertible(f"{where}: the assert fails on its own")
        self._validate(expr, where)
        self.checks.append(Check(expr, tuple(indices), st.lineno))

    def _validate(self, expr: ast.expr, where: str) -> None:
        """Fail at conversion time (not at scoring time) on names the evaluator cannot know."""
        bound = {g.target.id for g in ast.walk(expr) if isinstance(g, ast.comprehension)
                 and isinstance(g.target, ast.Name)}
        modules = {id(n.value) for n in ast.walk(expr) if isinstance(n, ast.Attribute)
                   and isinstance(n.value, ast.Name)
                   and ((n.value.id, n.attr) in SAFE_ATTRS or (n.value.id, n.attr) in SAFE_CONSTS)}
        for node in ast.walk(expr):
            if id(node) in modules:
                continue
            if isinstance(node, ast.Name) and not node.id.startswith("__r") and node.id not in bound \
                    and node.id not in self.env and node.id not in SAFE_TYPES and node.id not in SAFE_FUNCS:
                raise Unconvertible(f"{where}: unknown name {node.id!r}")
            if isinstance(node, (ast.Lambda, ast.DictComp, ast.NamedExpr, ast.Await, ast.Yield, ast.JoinedStr)):
                raise Unconvertible(f"{where}: {type(node).__name__} expression")
            if isinstance(node, ast.Call):
                _safe_callable(node.func)
            if isinstance(node, ast.Attribute) and not (
                    isinstance(node.value, ast.Name)
                    and ((node.value.id, node.attr) in SAFE_ATTRS or (node.value.id, node.attr) in SAFE_CONSTS)):
                raise Unconvertible(f"{where}: attribute {ast.unparse(node)}")


def defined_names(program: str) -> frozenset[str]:
    """Top-level functions and classes a program defines (an MBPP solution may define `sum`)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return frozenset()
    return frozenset(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def convert(test_code: str | None, entry_point: str | None = None,
            program_names: frozenset[str] = frozenset()) -> tuple[list[ProgramCall], list[Check]]:
    """The program calls and checks of `test_code`; raises Unconvertible with the reason.
    `program_names`: names the program defines, which are its calls even where they shadow a
    builtin the test code could otherwise apply to results."""
    if not isinstance(test_code, str) or not test_code.strip():
        raise Unconvertible("empty test code")
    try:
        tree = ast.parse(test_code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise Unconvertible(f"test code does not parse: {type(e).__name__}") from None
    conv = _Converter(entry_point, program_names)
    conv.statements(tree.body, set(), top=True)
    if conv.check_fn is not None:
        conv.statements(conv.check_fn.body, {conv.check_fn.args.args[0].arg}, top=False)
    if not conv.checks:
        raise Unconvertible("no assertion calls the program")
    names = sorted({c.fn for c in conv.calls})
    if len(names) > 1:  # `f(x) == g(x)` with both the program's would let it choose both sides
        raise Unconvertible(f"the asserts call several program functions ({', '.join(names)})")
    return conv.calls, conv.checks


def evaluate(check: Check, results: Mapping[int, Any]) -> bool:
    """Did `check` hold, given each call's plain result? Errors count as a failed assert."""
    scope = {f"__r{k}": results[k] for k in check.calls}
    try:
        return bool(safe_eval(check.expr, scope))
    except Exception:  # noqa: BLE001  (as the assert would have raised)
        return False
