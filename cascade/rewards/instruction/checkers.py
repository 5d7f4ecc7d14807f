"""IFEval and IFBench checkers from the pinned `if-verifiable` package, loaded without network.

The reward uses the package's checker classes unchanged; this module is the only place that
knows how it is imported, because two of its import-time effects do not suit a reward worker:

- `if_verifiable.ifbench.instructions_util` calls `nltk.download(...)` at import for every NLTK
  resource it cannot find (punkt, the POS tagger, ...). Rewards never reach the network: NLTK
  reads the offline data (`cascade.offline`), and the import runs with `nltk.download` disabled,
  so a checker whose data is absent raises LookupError when used (the reward reports which
  resource) instead of fetching it.
- `if_verifiable/__init__.py` imports the package's Hugging Face `datasets` loader (pandas,
  pyarrow: ~100 MB per worker) that the checkers never use, so only the checker modules are
  imported; the package `__init__` runs later, if some code asks for the package's own API.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from functools import lru_cache, partial
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any


def setup_nltk() -> None:
    """Make the offline NLTK data visible (before nltk is imported). A preset $NLTK_DATA that
    already holds punkt_tab wins; otherwise cascade.offline's cache is used (clear error if absent)."""
    preset = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if any((Path(p) / "tokenizers" / "punkt_tab").is_dir() for p in preset):
        return
    from cascade.offline import use_offline_nltk

    use_offline_nltk()


def _no_download(*_args: Any, **_kwargs: Any) -> bool:
    return False  # what nltk.download returns when it could not fetch the resource


def _finish_package(package: ModuleType, spec: ModuleSpec, name: str) -> Any:
    """Module `__getattr__` of the partial package: a name it lacks (the package API) runs the
    real `__init__` first, so code that wants all of if-verifiable still gets it."""
    del package.__getattr__
    assert spec.loader is not None
    spec.loader.exec_module(package)
    return getattr(package, name)


def _import_checker_modules(names: tuple[str, ...]) -> list[ModuleType]:
    """Import `if_verifiable.<name>` modules without running the package `__init__`, and with
    NLTK downloads disabled while they load."""
    import nltk

    spec = importlib.util.find_spec("if_verifiable")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("if-verifiable is not installed (pinned in requirements-cpu.txt)")
    if "if_verifiable" not in sys.modules:  # the package with its __path__, __init__ not run yet
        package = importlib.util.module_from_spec(spec)
        package.__getattr__ = partial(_finish_package, package, spec)  # type: ignore[method-assign]
        sys.modules["if_verifiable"] = package
    download, nltk.download = nltk.download, _no_download
    try:
        return [importlib.import_module(f"if_verifiable.{n}") for n in names]
    finally:
        nltk.download = download


@lru_cache(maxsize=1)
def _modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    setup_nltk()
    import langdetect

    langdetect.DetectorFactory.seed = 0  # langdetect samples: fix it so rewards are reproducible
    ifeval, ifbench, common = _import_checker_modules(
        ("ifeval.instructions_registry", "ifbench.instructions_registry", "common"))
    return ifeval, ifbench, common


def load_registries() -> tuple[dict[str, Any], dict[str, Any]]:
    """(IFEval id -> checker class, IFBench id -> checker class); the ids do not overlap."""
    ifeval, ifbench, _ = _modules()
    return dict(ifeval.INSTRUCTION_DICT), dict(ifbench.INSTRUCTION_DICT)


def ifeval_conflicts() -> dict[str, set[str]]:
    """IFEval's table of instruction ids that must not be combined with each other."""
    return {k: set(v) for k, v in _modules()[0].INSTRUCTION_CONFLICTS.items()}


def loose_variants(response: str) -> list[str]:
    """The eight response variants of the reference loose evaluation (first/last line and
    markdown asterisks removed), in the references' order."""
    return list(_modules()[2].get_loose_transformations(response))
