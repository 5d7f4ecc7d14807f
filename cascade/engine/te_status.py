"""Whether Transformer Engine can be used in this process, and if not, why.

Why a real import and not ``importlib.util.find_spec``: an installed TE often fails to import
(built against another torch or CUDA, a missing ``libcudnn``, an ABI mismatch after torch was
replaced by a pip install). ``find_spec`` still finds it, so the engine would pick the TE layer
spec and crash deep inside model construction. Megatron-Core itself probes TE with
``try: import transformer_engine ... except ImportError`` in a few dozen modules; an ``OSError``
(missing shared library) or ``RuntimeError`` raised by TE's import then escapes and breaks
``import megatron.core`` altogether.

``probe()`` imports TE once, before Megatron-Core is imported (``cascade.engine.device`` calls it),
records the outcome, and when the import fails it puts ``None`` into ``sys.modules`` under TE's
names: every later ``import transformer_engine`` (Megatron's included) then raises
``ModuleNotFoundError``, and ``find_spec`` returns ``None``, so a broken TE looks exactly like an
absent one. ``te_status()`` returns the recorded ``(available, reason)`` for logs and checks.

This module imports neither torch nor Megatron itself (``te_status()`` loads the engine's device
module if nothing has probed yet).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable

# Top-level modules a TE install provides; hidden together when TE is unusable (the compiled
# extension may import on its own while the Python package fails, and Megatron probes both).
TE_MODULES = ("transformer_engine", "transformer_engine_torch")

_status: tuple[bool, str] | None = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def hide_transformer_engine() -> None:
    """Make TE look uninstalled to every later import in this process."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in TE_MODULES):
            del sys.modules[name]
    for m in TE_MODULES:
        sys.modules[m] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError


def probe(
    on_gpu: bool,
    *,
    import_module: Callable[[str], object] = importlib.import_module,
    find_spec: Callable[[str], object] = importlib.util.find_spec,
) -> tuple[bool, str]:
    """Import TE for real (``transformer_engine.pytorch``, what Megatron-Core uses) and record
    whether the engine will use it. ``available`` is true only on a GPU with a working TE.

    A TE that is installed but fails to import is hidden from the rest of the process (see the
    module docstring) on CPU as well as on GPU: Megatron would import it on either.
    Idempotent: the first call decides.
    """
    global _status
    if _status is not None:
        return _status
    try:
        installed = find_spec("transformer_engine") is not None
    except (ImportError, ValueError):  # a parent entry of None in sys.modules, a broken finder
        installed = False
    if not installed:
        _status = (False, "transformer_engine is not installed: Megatron-Core's local (torch) "
                          "layer spec is used; FP8 is unavailable")
        return _status
    try:
        te = import_module("transformer_engine")
        import_module("transformer_engine.pytorch")
    except Exception as e:  # noqa: BLE001  (any failure means: do not use TE)
        hide_transformer_engine()
        _status = (False, f"transformer_engine is installed but its import failed ({_first_line(e)}): "
                          "it is hidden from Megatron-Core, the local layer spec is used and FP8 "
                          "is unavailable")
        return _status
    version = getattr(te, "__version__", "unknown version")
    if not on_gpu:
        _status = (False, f"transformer_engine {version} imports, but this process runs on CPU "
                          "(no CUDA device, or CASCADE_DEVICE=cpu): the local layer spec is used")
        return _status
    _status = (True, f"transformer_engine {version} imported: the TE layer spec is used")
    return _status


def te_status() -> tuple[bool, str]:
    """``(available, reason)`` as decided when the engine loaded; loads the engine's device
    module first if nothing has probed yet (the decision needs to know CPU or GPU)."""
    if _status is None:
        import cascade.engine.device  # noqa: F401  (runs probe() with the device it picked)
    assert _status is not None
    return _status


def _reset_for_tests() -> None:
    global _status
    _status = None
