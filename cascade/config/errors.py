"""The exception types of user mistakes, so every CLI prints them as one line without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (a path, an argument, a value): one line, exit code 2.

    The message names what is wrong (file, key, row) and, where there is one, the fix.
    """

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A config file, override or graph is invalid; the message names the file and key."""
