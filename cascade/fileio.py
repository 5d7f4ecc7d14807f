"""Atomic file writes and the `latest` checkpoint pointer: the one writer and the one reader.

Every layer needs them (the engine's checkpointer, the stage runtime, the launcher's status,
evals), and none may see half a file: a write goes to a temporary file in the same directory,
is fsync'ed and renamed over the target. Reading `latest` has one rule everywhere, so the
launcher never logs a fresh start while the engine resumes: the directory the pointer names
when it is committed (holds `cascade_meta.json`), else the newest committed `iter_N` (a crash
while re-saving the same step), else an error; no pointer at all means nothing was committed.
Torch-free, so the launcher and `status` stay light.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

LATEST = "latest"
CKPT_META = "cascade_meta.json"  # written last into every committed iter_N
_COMMITTED = re.compile(r"^iter_(\d+)$")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def checkpoint_step(path: Path) -> int | None:
    m = _COMMITTED.match(path.name)
    return int(m.group(1)) if m else None


def committed_checkpoints(root: str | Path) -> list[Path]:
    """Committed checkpoint directories under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _COMMITTED.match(p.name) and (p / CKPT_META).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def read_latest(root: str | Path) -> Path | None:
    """The committed checkpoint `latest` names, by the rule in the module docstring."""
    pointer = Path(root) / LATEST
    try:
        name = pointer.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    path = Path(root) / name
    if _COMMITTED.match(name) and (path / CKPT_META).is_file():
        return path
    done = committed_checkpoints(root)
    if not done:
        raise FileNotFoundError(f"{pointer} names {name!r}, and no committed checkpoint exists under {root}")
    log.warning("%s names %r, which is not a committed checkpoint; using %s", pointer, name, done[-1].name)
    return done[-1]


def write_latest(root: str | Path, step_dir: Path) -> None:
    """Point `latest` at a committed checkpoint (after every rank finished writing it)."""
    atomic_write_text(Path(root) / LATEST, step_dir.name + "\n")
