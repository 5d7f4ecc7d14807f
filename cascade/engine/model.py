"""Model providers: Qwen3 (8B, 14B, tiny), Qwen2 and Llama (SmolLM2-135M) as Megatron-Core GPTModels,
and the hybrid Mamba/attention/MoE ``nemotron_h`` family as a HybridModel (``cascade.engine.hybrid``).

Why one provider for all: these families differ only in a few switches (QK-norm, QKV bias, tied
embeddings, RoPE base/scaling), so one function maps our typed ``ModelConfig`` onto a
``TransformerConfig`` and builds the model chunks for this rank's pipeline stage(s). On a GPU
with a Transformer Engine that imports (``cascade.engine.te_status``) the TE layer spec (fused norms
+ linears, FP8-capable) is used; otherwise Megatron-Core's local (torch) spec, whose checkpoints
map onto the same sharded keys.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from megatron.core import parallel_state as ps
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
from megatron.core.enums import ModelType
from megatron.core.models.gpt import GPTModel
from megatron.core.models.gpt.gpt_layer_specs import (
    get_gpt_layer_local_spec,
    get_gpt_layer_with_transformer_engine_spec,
)
from megatron.core.transformer.module import Float16Module, MegatronModule
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.utils import unwrap_model

from cascade.config.schema.common import ModelConfig, ParallelConfig, PrecisionConfig
from cascade.engine import device, hybrid
from cascade.engine.precision import PrecisionPlan, resolve_precision
from cascade.engine.sdpa_attention import SDPAttention

# GPTModel logs a deprecation notice per chunk; it is still the model Megatron-Bridge builds for
# Qwen3/Llama in 0.19 (HybridModel is the successor), so keep logs readable.
logging.getLogger("megatron.core.models.gpt.gpt_model").setLevel(logging.ERROR)

# Weight-gradient accumulation fusion also needs apex's kernel for the (non-TE) output layer.
_APEX_WGRAD_FUSION = importlib.util.find_spec("fused_weight_gradient_mlp_cuda") is not None


class ModelBuildError(ValueError):
    """A model config that cannot be built under the requested layout."""


@dataclass
class YarnTransformerConfig(TransformerConfig):
    """TransformerConfig plus the YaRN fields GPTModel reads with getattr (HF ``rope_scaling``
    of type yarn, as Qwen3 uses beyond 32K)."""

    yarn_rotary_scaling_factor: float = 1.0
    yarn_original_max_position_embeddings: int = 32768
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    yarn_mscale: float = 1.0
    yarn_mscale_all_dim: float = 0.0
    yarn_correction_range_round_to_int: bool = True


def _check_shapes(model: ModelConfig, parallel: ParallelConfig) -> None:
    tp, pp, vp = parallel.tensor, parallel.pipeline, parallel.virtual_pipeline or 1
    problems = []
    if model.num_query_groups % tp:
        problems.append(f"num_query_groups={model.num_query_groups} is not divisible by tensor={tp}")
    if model.ffn_hidden_size % tp:
        problems.append(f"ffn_hidden_size={model.ffn_hidden_size} is not divisible by tensor={tp}")
    if model.vocab_size % tp:
        # We never pad the vocabulary: padded rows would change logprobs and the exported shapes.
        problems.append(f"vocab_size={model.vocab_size} is not divisible by tensor={tp}")
    if model.num_layers % (pp * vp):
        problems.append(
            f"num_layers={model.num_layers} is not divisible by pipeline*virtual_pipeline={pp}*{vp}"
        )
    if hybrid.is_hybrid(model):
        problems += hybrid.check_hybrid_shapes(model, parallel)
        if pp > 1:
            problems.append(
                "nemotron_h with pipeline>1 is not supported yet (the layer pattern would need "
                "Megatron's '|' stage boundaries); use tensor/expert/data parallelism"
            )
    elif parallel.expert > 1:
        problems.append(f"parallel.expert={parallel.expert} needs an MoE model (family nemotron_h)")
    if problems:
        raise ModelBuildError("; ".join(problems))


def _recompute_kwargs(mode: str) -> dict:
    if mode == "full":  # every layer recomputed from its input in backward
        return dict(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1)
    if mode == "selective":  # core attention only (Megatron's default selective modules)
        return dict(recompute_granularity="selective")
    return {}


def transformer_config(
    model: ModelConfig,
    parallel: ParallelConfig,
    plan: PrecisionPlan,
    *,
    meta: bool = False,
) -> TransformerConfig:
    """The Megatron TransformerConfig for ``model`` under ``parallel`` and ``plan``."""
    _check_shapes(model, parallel)
    fused = device.HAVE_TE  # fused kernels exist only with TE on a GPU
    kwargs: dict = dict(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        ffn_hidden_size=model.ffn_hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups,
        kv_channels=model.kv_channels,
        normalization="RMSNorm",
        layernorm_epsilon=model.norm_epsilon,
        gated_linear_unit=True,  # SwiGLU
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=getattr(model, "add_qkv_bias", False),
        qk_layernorm=model.qk_layernorm,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=0.02,
        tensor_model_parallel_size=parallel.tensor,
        pipeline_model_parallel_size=parallel.pipeline,
        virtual_pipeline_model_parallel_size=parallel.virtual_pipeline,
        context_parallel_size=parallel.context,
        sequence_parallel=parallel.sequence_parallel,
        # CPU: no CUDA init path; meta: allocate without initialising (parameter counting).
        use_cpu_initialization=device.ON_CPU or meta,
        perform_initialization=not meta,
        # Loss is a sum over tokens, normalised once by the global count of loss tokens: every
        # layout (DP, PP, microbatching) then computes the same gradient.
        calculate_per_token_loss=True,
        # TE fused RoPE has no YaRN mscale
        apply_rope_fusion=fused and model.rope_scaling is None and model.position_embedding == "rope",
        bias_activation_fusion=fused,
        gradient_accumulation_fusion=fused and _APEX_WGRAD_FUSION,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        deallocate_pipeline_outputs=device.ON_GPU,
        # Interleaved (virtual) pipelines: overlapped, unbatched p2p as in Megatron-LM. Batched
        # p2p at PP=2 sends activations and gradients to the same peer in one batch, and they
        # are matched in the wrong order (measured: wrong losses over gloo).
        overlap_p2p_comm=parallel.virtual_pipeline is not None,
        batch_p2p_comm=parallel.virtual_pipeline is None,
        **_recompute_kwargs(parallel.recompute),
        **plan.transformer_kwargs(),
    )
    if hybrid.is_hybrid(model):
        kwargs.update(hybrid.hybrid_config_kwargs(model, parallel, fused))
    if model.rope_scaling is not None:
        rs = model.rope_scaling
        return YarnTransformerConfig(
            yarn_rotary_scaling_factor=rs.factor,
            yarn_original_max_position_embeddings=rs.original_max_position_embeddings,
            **kwargs,
        )
    return TransformerConfig(**kwargs)


def layer_spec(model: ModelConfig, use_te: bool | None = None) -> ModuleSpec:
    """TE spec on a GPU with Transformer Engine, the local torch spec otherwise."""
    use_te = device.HAVE_TE if use_te is None else use_te
    if hybrid.is_hybrid(model):
        return hybrid.hybrid_stack_spec(model, use_te)
    if use_te:
        return get_gpt_layer_with_transformer_engine_spec(qk_layernorm=model.qk_layernorm)
    spec = get_gpt_layer_local_spec(qk_layernorm=model.qk_layernorm, normalization="RMSNorm")
    spec.submodules.self_attention.submodules.core_attention = SDPAttention  # fused attention
    return spec


def _gpt_chunk(
    model: ModelConfig, cfg: TransformerConfig, spec: ModuleSpec, vp_stage: int | None
) -> MegatronModule:
    pre = ps.is_pipeline_first_stage(ignore_virtual=False, vp_stage=vp_stage)
    post = ps.is_pipeline_last_stage(ignore_virtual=False, vp_stage=vp_stage)
    if hybrid.is_hybrid(model):
        return hybrid.hybrid_chunk(model, cfg, spec, pre, post, vp_stage)
    chunk = GPTModel(
        config=cfg,
        transformer_layer_spec=spec,
        vocab_size=model.vocab_size,
        max_sequence_length=model.max_position_embeddings,
        pre_process=pre,
        post_process=post,
        share_embeddings_and_output_weights=model.tie_word_embeddings,
        position_embedding_type="yarn" if model.rope_scaling is not None else "rope",
        rotary_base=int(model.rotary_base),
        vp_stage=vp_stage,
    )
    chunk.model_type = ModelType.encoder_or_decoder
    return chunk


def ddp_config(optim_distributed: bool, plan: PrecisionPlan) -> DistributedDataParallelConfig:
    """Megatron DDP settings: fp32 grad reduction; grad-reduce overlap on GPU only (CPU has no
    streams). Param-gather overlap stays off: it defers the all-gather into forward pre-hooks,
    which checkpoint saves and weight export would then have to flush."""
    return DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=device.ON_GPU,
        use_distributed_optimizer=optim_distributed,
        average_in_collective=False,  # required by per-token loss
        fp8_param_gather=plan.fp8_param,
    )


def build_model(
    model: ModelConfig,
    parallel: ParallelConfig,
    precision: PrecisionConfig,
    *,
    wrap_ddp: bool = True,
    use_distributed_optimizer: bool = True,
) -> list[MegatronModule]:
    """This rank's model chunks (one per virtual pipeline stage), ready for the optimizer.

    Needs ``init_distributed`` first. With ``wrap_ddp`` the chunks are Megatron DDP modules (grad
    buffers, DP reduction); pass ``wrap_ddp=False`` only for forward-only use (export, reference
    logprobs): on GPU the fused weight-gradient path writes into DDP's buffers.
    """
    plan = resolve_precision(precision, parallel, use_distributed_optimizer=use_distributed_optimizer)
    cfg = transformer_config(model, parallel, plan)
    spec = layer_spec(model)
    vp = parallel.virtual_pipeline
    chunks: list[MegatronModule] = []
    for vp_stage in range(vp or 1):
        chunk = _gpt_chunk(model, cfg, spec, vp_stage if vp else None)
        if model.moe is not None:  # before DDP builds its (dense / expert) grad buffers
            hybrid.mark_expert_params(chunk)
            if model.moe.freeze_router:
                hybrid.freeze_router(chunk)
        if device.ON_GPU:
            chunk.cuda(torch.cuda.current_device())
        if plan.bf16 or plan.fp16:
            chunk = Float16Module(cfg, chunk)
        chunks.append(chunk)
    if wrap_ddp:
        dcfg = ddp_config(use_distributed_optimizer, plan)
        chunks = [
            DistributedDataParallel(config=cfg, ddp_config=dcfg, module=c, disable_bucketing=i > 0)
            for i, c in enumerate(chunks)
        ]
    return chunks


def parameter_counts_on_meta(model: ModelConfig) -> tuple[int, int]:
    """(total, active) parameters of ``model`` at TP=PP=EP=1, built on the meta device (no
    memory, no init). Active counts what one token passes through: every parameter except the
    routed experts, of which ``top_k`` of ``num_experts`` (embedding and output layer included;
    equal to total for dense models).

    Needs a (1-process) ``init_distributed`` first; counts the tied embedding once.
    """
    parallel = ParallelConfig()
    plan = resolve_precision(PrecisionConfig(), parallel)
    cfg = transformer_config(model, parallel, plan, meta=True)
    with torch.device("meta"):
        chunk = _gpt_chunk(model, cfg, layer_spec(model, use_te=False), None)
    total = routed = 0
    for name, p in chunk.named_parameters():
        total += p.numel()
        if ".mlp.experts." in f".{name}":
            routed += p.numel()
    if model.moe is None:
        return total, total
    active_routed, rem = divmod(routed * model.moe.top_k, model.moe.num_experts)
    assert rem == 0, "routed experts of unequal sizes"
    return total, total - routed + active_routed


def count_parameters_on_meta(model: ModelConfig) -> int:
    """Total parameters of ``model`` (see ``parameter_counts_on_meta``)."""
    return parameter_counts_on_meta(model)[0]


def unwrap(chunks: list[MegatronModule]) -> list[GPTModel]:
    """The bare GPTModels inside DDP / Float16Module wrappers."""
    return [unwrap_model(c) for c in chunks]


@contextlib.contextmanager
def eval_mode(chunks: list[MegatronModule]):
    """Switch chunks to eval for a forward-only pass and restore their mode afterwards."""
    was = [c.training for c in chunks]
    for c in chunks:
        c.eval()
    try:
        yield
    finally:
        for c, t in zip(chunks, was):
            c.train(t)
