"""Turn a GGUF checkpoint into a plain HF directory (safetensors + tokenizer + chat template).

Why: transformers loads a GGUF only through its dequantising path (needs `gguf`, slow, and the
result refuses `save_pretrained` as "quantized"). Every consumer here (Megatron import, vLLM, the
transformers generator, tests) wants a normal HF directory, so we convert once at fetch time.
Recipe (verified by the offline tests): drop `quantization_config`, rebuild the
model from its config and load the dequantised state dict with strict key matching.
"""

from __future__ import annotations

import json
from pathlib import Path

PROBE = "<|im_start|>user\nWhat is 2+3? /think<|im_end|>\n<|im_start|>assistant\n<think>\nok\n</think>\n\n5"


def convert_gguf_to_hf(gguf_file: Path, out_dir: Path, dtype: str = "bfloat16") -> None:
    """Write `out_dir` as an HF model directory from `gguf_file` (out_dir must not exist)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    src_dir, name = str(gguf_file.parent), gguf_file.name
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    for attr in ("_model_name_or_path",):  # GGUF metadata leaking into config.json
        if hasattr(config, attr):
            delattr(config, attr)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    result = plain.load_state_dict(gguf_model.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; belt and braces
        raise RuntimeError(f"GGUF conversion key mismatch: {result}")
    del gguf_model
    gen = plain.generation_config
    gen.eos_token_id = tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    gen.bos_token_id = tok.bos_token_id
    out_dir.mkdir(parents=True, exist_ok=False)
    plain.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    _portable_tokenizer_config(out_dir / "tokenizer_config.json", config.max_position_embeddings)
    _check_tokenizer(out_dir, tok)


def _portable_tokenizer_config(path: Path, max_len: int) -> None:
    """The GGUF path yields a generic `TokenizersBackend`; name the class the original SmolLM2 repo
    uses (GPT2Tokenizer, same tokenizer.json) and its real max length, drop load-time flags."""
    cfg = json.loads(path.read_text())
    for key in ("is_local", "local_files_only"):
        cfg.pop(key, None)
    cfg.update(tokenizer_class="GPT2Tokenizer", model_max_length=max_len)
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def _check_tokenizer(out_dir: Path, reference: object) -> None:
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    if reloaded(PROBE)["input_ids"] != reference(PROBE)["input_ids"]:  # type: ignore[operator]
        raise RuntimeError(f"converted tokenizer in {out_dir} encodes differently from the GGUF's")
