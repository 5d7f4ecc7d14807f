"""What every Cascade CLI shares: `key=value` overrides anywhere on the command line, and user
mistakes (`UserError`) reported as one line with exit code 2 (a traceback only with `--debug`)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

from cascade.config.errors import UserError

# KEY=VALUE with a dotted key; Hydra's `+key=` / `++key=` are accepted (every key must exist in
# the schema anyway, so "add" and "add or override" both mean "set").
_OVERRIDE = re.compile(r"^(\+{1,2})?([A-Za-z_][\w\-]*(?:\.[A-Za-z_0-9][\w\-]*)*)=(.*)$", re.S)
DEBUG_FLAG = "--debug"


def is_override(token: str) -> bool:
    """True for `key=value`, `+key=value` and `++key=value` (never for `--opt=value`)."""
    return bool(_OVERRIDE.match(token))


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the other arguments, the `key=value` overrides), wherever the overrides stand.

    `~key` (Hydra's delete) is refused with our syntax: a key is reset by setting it.
    """
    rest: list[str] = []
    overrides: list[str] = []
    for token in argv:
        m = _OVERRIDE.match(token)
        if m:
            overrides.append(f"{m.group(2)}={m.group(3)}")
        elif token.startswith("~") and "." in token.split("=")[0]:
            raise UserError(f"override {token!r}: deleting keys is not supported; set it instead: "
                            f"{token.lstrip('~').split('=')[0]}=VALUE")
        else:
            rest.append(token)
    return rest, overrides


def parse_with_overrides(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
                         unknown_hint: str = "overrides are key=value") -> argparse.Namespace:
    """Parse `argv` with `key=value` overrides allowed in any position (-> `args.overrides`).

    Tokens after a literal `--` are left alone (`args.passthrough`): they belong to another program.
    A token that is neither an option nor an override is a UserError ending in `unknown_hint`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    argv = [a for a in argv if a != DEBUG_FLAG]
    rest, overrides = split_overrides(argv)
    args, unknown = parser.parse_known_args(rest)
    if unknown:
        raise UserError(f"unrecognized arguments: {' '.join(unknown)} ({unknown_hint})")
    args.overrides = overrides
    args.passthrough = passthrough
    return args


def run_cli(fn: Callable[[list[str]], int], argv: Sequence[str] | None = None, prog: str = "cascade") -> int:
    """Call `fn(argv)`; a UserError becomes one line on stderr and its exit code.

    With `--debug` anywhere in argv the error propagates with its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    try:
        return fn([a for a in argv if a != DEBUG_FLAG])
    except BrokenPipeError:  # `... | head`: the reader left early, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as e:
        if debug:
            raise
        message = " ".join(str(e).split()) or type(e).__name__  # one line, whatever the message holds
        print(f"{prog}: error: {message}", file=sys.stderr)
        return e.exit_code
