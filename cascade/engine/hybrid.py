"""The ``nemotron_h`` family: a Megatron-Core HybridModel of Mamba-2, attention and MoE layers.

Why a module of its own: the hybrid model shares the dense families' config path (parallel
layout, precision, per-token loss, recompute) but needs Megatron's HybridModel, a layer pattern
(``M`` Mamba-2, ``*`` attention, ``E`` MoE, ``-`` dense MLP), the Mamba and MoE fields of the
TransformerConfig, and a layer spec. On a GPU with Transformer Engine that is Megatron's own
``hybrid_stack_spec``; otherwise a local (torch) spec with the same modules and, through
``sharded_state_dict_keys_map``, the same checkpoint keys (the TE spec fuses the pre-norms into
the next linear). On CPU the Mamba kernels are ``cascade.engine.cpu_kernels``.
"""

from __future__ import annotations

from functools import partial

import torch
from megatron.core.activations import squared_relu
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
from megatron.core.models.gpt.moe_module_specs import get_moe_module_spec
from megatron.core.models.hybrid.hybrid_block import HybridStack, HybridStackSubmodules
from megatron.core.models.hybrid.hybrid_model import HybridModel
from megatron.core.ssm.mamba_layer import MambaLayer, MambaLayerSubmodules
from megatron.core.ssm.mamba_mixer import MambaMixer, MambaMixerSubmodules
from megatron.core.ssm.mlp_layer import MLPLayer
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear
from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_layer import (
    MoETransformerLayer,
    TransformerLayer,
    TransformerLayerSubmodules,
)

from cascade.config.schema.common import ModelConfig, ModelFamily, ParallelConfig
from cascade.engine.sdpa_attention import SDPAttention

_LOAD_BALANCING = {"none": "none", "aux_loss": "aux_loss", "seq_aux_loss": "seq_aux_loss"}


def is_hybrid(model: ModelConfig) -> bool:
    return model.family is ModelFamily.NEMOTRON_H


def check_hybrid_shapes(model: ModelConfig, parallel: ParallelConfig) -> list[str]:
    """What the layout cannot split (Megatron would assert deep inside the build)."""
    tp, ep = parallel.tensor, parallel.expert
    problems = []
    if model.mamba is not None:
        m = model.mamba
        if m.num_heads % tp:
            problems.append(f"mamba.num_heads={m.num_heads} is not divisible by tensor={tp}")
        if m.num_groups % tp:
            problems.append(f"mamba.num_groups={m.num_groups} is not divisible by tensor={tp}")
    if model.moe is not None:
        e = model.moe
        etp = parallel.expert_tensor or tp
        if e.num_experts % ep:
            problems.append(f"moe.num_experts={e.num_experts} is not divisible by expert={ep}")
        if e.ffn_hidden_size % etp:
            problems.append(f"moe.ffn_hidden_size={e.ffn_hidden_size} is not divisible by expert_tensor={etp}")
        shared = e.shared_expert_ffn_hidden_size
        if shared is not None and shared % tp:
            problems.append(f"moe.shared_expert_ffn_hidden_size={shared} is not divisible by tensor={tp}")
    elif ep > 1:
        problems.append(f"parallel.expert={ep} needs MoE layers (model.moe)")
    return problems


def hybrid_config_kwargs(model: ModelConfig, parallel: ParallelConfig, fused: bool) -> dict:
    """TransformerConfig fields of the Mamba, MoE and activation settings (Megatron names)."""
    kw: dict = dict(is_hybrid_model=True)
    if model.activation == "squared_relu":
        kw.update(gated_linear_unit=False, activation_func=squared_relu)
    if model.mamba is not None:
        m = model.mamba
        kw.update(
            mamba_num_heads=m.num_heads, mamba_head_dim=m.head_dim,
            mamba_state_dim=m.state_dim, mamba_num_groups=m.num_groups,
        )
    kw.update(
        expert_model_parallel_size=parallel.expert,
        expert_tensor_parallel_size=parallel.expert_tensor or parallel.tensor,
    )
    if model.moe is not None:
        e = model.moe
        kw.update(
            num_moe_experts=e.num_experts,
            moe_router_topk=e.top_k,
            moe_ffn_hidden_size=e.ffn_hidden_size,
            moe_shared_expert_intermediate_size=e.shared_expert_ffn_hidden_size,
            moe_router_score_function=e.score_function,
            moe_router_topk_scaling_factor=e.topk_scaling_factor,
            moe_router_enable_expert_bias=e.enable_expert_bias,
            moe_router_bias_update_rate=0.0 if e.freeze_router else e.bias_update_rate,
            moe_router_load_balancing_type=_LOAD_BALANCING[e.load_balancing],
            moe_aux_loss_coeff=e.aux_loss_coeff,
            moe_router_dtype="fp32",  # routing decisions in fp32 (as NemotronH's provider sets)
            moe_token_dispatcher_type="alltoall",
            moe_grouped_gemm=fused,  # TE grouped GEMM on GPU; one MLP per expert otherwise
            moe_permute_fusion=False,
        )
    return kw


class SequenceParallelRMSNorm:
    """torch RMSNorm that also runs under sequence parallelism (Megatron's WrappedTorchNorm
    refuses it): each TP rank normalises its slice of the sequence, and the weight is marked
    ``sequence_parallel`` so Megatron's grad finalisation sums its gradient over TP, as it does
    for TE's norms. Megatron requires sequence parallelism for MoE with TP > 1 in training."""

    def __new__(cls, config, hidden_size: int, eps: float = 1e-5, **_: object) -> torch.nn.Module:  # noqa: ANN001
        norm = torch.nn.RMSNorm(hidden_size, eps=eps)
        norm.weight.sequence_parallel = bool(config.sequence_parallel)
        return norm


def _local_stack_spec(model: ModelConfig) -> ModuleSpec:
    """Megatron-Core modules only (no TE): CPU and GPUs without Transformer Engine."""
    norm = SequenceParallelRMSNorm
    mamba = ModuleSpec(
        module=MambaLayer,
        submodules=MambaLayerSubmodules(
            norm=norm,
            mixer=ModuleSpec(
                module=MambaMixer,
                params={"d_conv": model.mamba.conv_kernel, "chunk_size": model.mamba.chunk_size}
                if model.mamba is not None else {},
                submodules=MambaMixerSubmodules(in_proj=ColumnParallelLinear, out_proj=RowParallelLinear),
            ),
            mamba_bda=get_bias_dropout_add,
            sharded_state_dict_keys_map={"norm.": "mixer.in_proj.layer_norm_"},
        ),
    )
    attention = ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=norm,
            self_attention=ModuleSpec(
                module=SelfAttention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(
                    linear_qkv=ColumnParallelLinear, core_attention=SDPAttention,
                    linear_proj=RowParallelLinear,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            sharded_state_dict_keys_map={"input_layernorm.": "self_attention.linear_qkv.layer_norm_"},
        ),
    )
    mlp = ModuleSpec(
        module=MLPLayer,
        submodules=TransformerLayerSubmodules(
            pre_mlp_layernorm=norm,
            mlp=partial(
                MLP.as_mlp_submodule,
                submodules=MLPSubmodules(linear_fc1=ColumnParallelLinear, linear_fc2=RowParallelLinear),
            ),
            mlp_bda=get_bias_dropout_add,
            sharded_state_dict_keys_map={"pre_mlp_layernorm.": "mlp.linear_fc1.layer_norm_"},
        ),
    )
    num_experts = model.moe.num_experts if model.moe is not None else 1
    moe = ModuleSpec(
        module=MoETransformerLayer,
        submodules=TransformerLayerSubmodules(
            pre_mlp_layernorm=norm,
            mlp=get_moe_module_spec(use_te=False, num_experts=num_experts, moe_grouped_gemm=False),
            mlp_bda=get_bias_dropout_add,
        ),
    )
    return ModuleSpec(
        module=HybridStack,
        submodules=HybridStackSubmodules(
            mamba_layer=mamba, attention_layer=attention, mlp_layer=mlp, moe_layer=moe
        ),
    )


def hybrid_stack_spec(model: ModelConfig, use_te: bool) -> ModuleSpec:
    """Megatron's TE hybrid spec with Transformer Engine, the local spec otherwise."""
    if not use_te:
        # HybridStack builds its final norm as TENorm whatever the spec says (as TransformerBlock
        # does; the CPU shim patches that one): without TE it is the torch RMSNorm below.
        from megatron.core.models.hybrid import hybrid_block

        hybrid_block.TENorm = SequenceParallelRMSNorm
        return _local_stack_spec(model)
    import copy

    from megatron.core.models.hybrid.hybrid_layer_specs import hybrid_stack_spec as te_spec

    spec = copy.deepcopy(te_spec)
    if model.mamba is not None:
        mixer = spec.submodules.mamba_layer.submodules.mixer
        mixer.params = {**mixer.params, "d_conv": model.mamba.conv_kernel, "chunk_size": model.mamba.chunk_size}
    return spec


def hybrid_chunk(
    model: ModelConfig, cfg, spec: ModuleSpec, pre: bool, post: bool, vp_stage: int | None  # noqa: ANN001
) -> HybridModel:
    """One pipeline chunk of the hybrid model (Megatron splits the pattern over PP stages)."""
    return HybridModel(
        config=cfg,
        hybrid_stack_spec=spec,
        vocab_size=model.vocab_size,
        max_sequence_length=model.max_position_embeddings,
        hybrid_layer_pattern=model.hybrid_layer_pattern,
        pre_process=pre,
        post_process=post,
        share_embeddings_and_output_weights=model.tie_word_embeddings,
        position_embedding_type=model.position_embedding,
        rotary_base=int(model.rotary_base),
        vp_stage=vp_stage,
    )


def mark_expert_params(chunk) -> int:  # noqa: ANN001
    """Routed-expert weights always go to Megatron's expert gradient buffers and expert
    optimizer, as they do when EP > 1 (at EP=1 Megatron treats them as dense parameters).
    The math is unchanged (at EP=1 the expert data-parallel group is the data-parallel group);
    what it buys is one optimizer structure (dense + expert) whatever the expert layout, so a
    checkpoint saved at EP=2 resumes at EP=1 and back. Returns how many were marked."""
    marked = 0
    for name, p in chunk.named_parameters():
        if ".mlp.experts." in f".{name}" and getattr(p, "allreduce", True):
            p.allreduce = False
            marked += 1
    return marked


def freeze_router(chunk) -> int:  # noqa: ANN001
    """Router weights stop training (Nano-3 RL froze them); returns how many were frozen."""
    frozen = 0
    for name, p in chunk.named_parameters():
        if ".mlp.router." in f".{name}" or name.endswith("router.weight"):
            p.requires_grad_(False)
            frozen += 1
    return frozen
