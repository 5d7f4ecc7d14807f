"""The `sh` fixture of the CLI tests (cli_helpers.py): a user's shell in the repo root."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import Shell, make_shell


@pytest.fixture
def sh(tmp_path: Path) -> Shell:
    return make_shell(tmp_path)
