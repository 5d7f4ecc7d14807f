"""Sections every training stage shares: model, parallelism, precision, optimizer, schedule,
checkpoints, logging. Frozen so a resolved config cannot drift after validation."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Literal


class ModelFamily(str, enum.Enum):
    QWEN3 = "qwen3"
    QWEN2 = "qwen2"  # Qwen2.5: the C1 reward-model backbone (QKV bias, no QK-norm)
    LLAMA = "llama"
    NEMOTRON_H = "nemotron_h"  # hybrid Mamba-2 / attention / MoE (Nemotron-3-Nano, C2's base)


class ChatMode(str, enum.Enum):
    """Which response style a stage trains or samples (C1 flags: ` /think`, ` /no_think`)."""

    THINKING = "thinking"
    INSTRUCT = "instruct"
    HALF_HALF = "half_half"  # RLHF for the unified 8B: an equal split of prompts per batch


@dataclass(frozen=True)
class RopeScaling:
    type: Literal["yarn"] = "yarn"
    factor: float = 2.0
    original_max_position_embeddings: int = 32768


HYBRID_LAYER_SYMBOLS = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


@dataclass(frozen=True)
class MambaConfig:
    """Mamba-2 mixer of the ``M`` layers of a hybrid model (Megatron-Core ``MambaMixer``)."""

    num_heads: int
    head_dim: int
    state_dim: int
    num_groups: int
    conv_kernel: int = 4  # causal depthwise conv width (MambaMixer d_conv)
    chunk_size: int = 128  # SSD scan chunk (the kernels' block; the math does not depend on it)

    def __post_init__(self) -> None:
        for name in ("num_heads", "head_dim", "state_dim", "num_groups", "conv_kernel", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"mamba.{name} must be >= 1")
        if self.num_heads % self.num_groups:
            raise ValueError(f"mamba.num_heads={self.num_heads} must be a multiple of num_groups={self.num_groups}")


@dataclass(frozen=True)
class MoEConfig:
    """Mixture-of-experts FFN of the ``E`` layers (Megatron-Core ``MoELayer``)."""

    num_experts: int
    top_k: int
    ffn_hidden_size: int  # per routed expert
    shared_expert_ffn_hidden_size: int | None = None  # one always-on shared expert of this size
    score_function: Literal["softmax", "sigmoid"] = "softmax"
    topk_scaling_factor: float | None = None  # routed weights multiplied by this
    # Aux-loss-free load balancing: a per-expert bias added to the scores for top-k selection
    # only, nudged after every step towards equal load (Megatron moe_router_enable_expert_bias).
    enable_expert_bias: bool = False
    bias_update_rate: float = 1e-3
    load_balancing: Literal["none", "aux_loss", "seq_aux_loss"] = "none"
    aux_loss_coeff: float = 0.0
    freeze_router: bool = False  # router weights (and expert bias updates) frozen, as Nano-3 RL did

    def __post_init__(self) -> None:
        if self.num_experts < 1 or not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"moe: need 1 <= top_k={self.top_k} <= num_experts={self.num_experts}")
        if self.ffn_hidden_size < 1:
            raise ValueError("moe.ffn_hidden_size must be >= 1")
        if self.load_balancing == "none" and self.aux_loss_coeff:
            raise ValueError("moe.aux_loss_coeff needs moe.load_balancing aux_loss or seq_aux_loss")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the policy; matches the HF config of `hf_name` (checked by params tests)."""

    family: ModelFamily
    hf_name: str  # the HF repo id this architecture reproduces (documentation and export)
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    kv_channels: int
    vocab_size: int
    max_position_embeddings: int
    rotary_base: float = 1_000_000.0
    rope_scaling: RopeScaling | None = None
    qk_layernorm: bool = True
    add_qkv_bias: bool = False  # Qwen2/2.5 only
    tie_word_embeddings: bool = False
    norm_epsilon: float = 1e-6
    # nemotron_h only: one symbol per layer (M mamba, * attention, E moe, - dense MLP)
    hybrid_layer_pattern: str | None = None
    activation: Literal["swiglu", "squared_relu"] = "swiglu"  # MLP and expert activation
    position_embedding: Literal["rope", "none"] = "rope"  # nemotron_h attention has no RoPE
    mamba: MambaConfig | None = None
    moe: MoEConfig | None = None

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_query_groups:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} must be a multiple of "
                f"num_query_groups={self.num_query_groups}"
            )
        pattern = self.hybrid_layer_pattern
        if self.family is not ModelFamily.NEMOTRON_H:
            if pattern is not None or self.mamba is not None or self.moe is not None:
                raise ValueError("hybrid_layer_pattern/mamba/moe are for family nemotron_h only")
            return
        if not pattern:
            raise ValueError("family nemotron_h needs hybrid_layer_pattern")
        unknown = set(pattern) - set(HYBRID_LAYER_SYMBOLS)
        if unknown:
            raise ValueError(f"hybrid_layer_pattern: unknown symbols {sorted(unknown)} (use M * E -)")
        if len(pattern) != self.num_layers:
            raise ValueError(f"hybrid_layer_pattern has {len(pattern)} layers, num_layers={self.num_layers}")
        if "M" in pattern and self.mamba is None:
            raise ValueError("hybrid_layer_pattern has Mamba layers (M): set model.mamba")
        if "E" in pattern and self.moe is None:
            raise ValueError("hybrid_layer_pattern has MoE layers (E): set model.moe")


@dataclass(frozen=True)
class ParallelConfig:
    """Megatron-Core layout. Data parallelism is what is left of the world size."""

    tensor: int = 1
    pipeline: int = 1
    virtual_pipeline: int | None = None
    context: int = 1
    sequence_parallel: bool = False
    expert: int = 1  # expert parallelism (MoE): routed experts split over this many ranks
    expert_tensor: int | None = None  # tensor parallelism inside each expert; None: = tensor
    # Activation recomputation (Megatron): "selective" recomputes core attention, "full" every
    # layer's activations (one layer per block, uniform); trades compute for long-context memory.
    recompute: Literal["none", "selective", "full"] = "none"

    def __post_init__(self) -> None:
        for name in ("tensor", "pipeline", "context", "expert"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.expert_tensor is not None and self.expert_tensor < 1:
            raise ValueError("expert_tensor must be >= 1")
        if self.sequence_parallel and self.tensor == 1:
            raise ValueError("sequence_parallel needs tensor > 1")
        if self.virtual_pipeline is not None and self.pipeline == 1:
            raise ValueError("virtual_pipeline needs pipeline > 1")

    @property
    def model_parallel_size(self) -> int:
        return self.tensor * self.pipeline * self.context

    @property
    def expert_model_parallel_size(self) -> int:
        """Ranks one copy of the experts spans: expert_tensor * expert * pipeline (Megatron's
        expert grid; the world size must be a multiple of it as well)."""
        return (self.expert_tensor or self.tensor) * self.expert * self.pipeline

    @property
    def sequence_multiple(self) -> int:
        """What every padded sequence length must be a multiple of under this layout.

        Context parallelism with load balancing cuts a sequence into ``2*context`` chunks, and
        sequence parallelism then splits each context-parallel shard ``tensor`` ways, so the
        length must divide by ``2*context*tensor`` (a separate lcm of ``2*context`` and ``tensor``
        is not enough: tensor=8, context=2 needs 32, not 16). 8 keeps tensor-core GEMMs aligned.
        Every stage that pads sequences (SFT, RL, reward model) uses this one rule.
        """
        cp_chunks = 2 * self.context if self.context > 1 else 1
        sp_split = self.tensor if self.sequence_parallel else 1
        return math.lcm(8, cp_chunks * sp_split)


@dataclass(frozen=True)
class PrecisionConfig:
    """Numeric precision of training (rollouts in vLLM stay bf16 whatever is set here).

    FP8 is off unless ``fp8`` is set; one override, ``precision.fp8=hybrid``, selects the
    documented FP8 variant because every other FP8 field defaults to it: hybrid format (E4M3 for
    weights and activations in forward, E5M2 for gradients in backward), delayed scaling with a
    1024-step amax history reduced by max, margin 0, bf16 parameters and optimizer master weights
    kept in fp32 by the distributed optimizer (``fp8_param`` off). The same values are spelled out
    in nemo_configs/base/precision/fp8.yaml for configs that inherit them through ``defaults:``.
    The fields map 1:1 onto Megatron-Core's TransformerConfig fields of the same names (``fp8`` is
    its format). Written against Megatron-Core 0.19.2 / Transformer Engine 2.20; FP8 training has
    not yet been run on a GPU with these settings.
    """

    params_dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    fp8: Literal["hybrid", "e4m3"] | None = None  # Transformer Engine on H100 or newer only
    fp8_recipe: Literal["delayed", "tensorwise", "blockwise"] = "delayed"
    fp8_param: bool = False  # FP8 parameter copies (saves memory; needs the distributed optimizer)
    fp8_margin: int = 0  # scale = 2**-margin * fp8_max / amax (delayed scaling)
    fp8_amax_history_len: int = 1024  # steps of amax history per tensor (delayed scaling)
    fp8_amax_compute_algo: Literal["max", "most_recent"] = "max"  # amax from the history window

    def __post_init__(self) -> None:
        if self.fp8_param and self.fp8 is None:
            raise ValueError("fp8_param needs fp8 to be set")
        if self.fp8 is not None and self.params_dtype != "bf16":
            # Megatron keeps FP8 GEMMs' inputs and the non-FP8 ops in params_dtype; the FP8
            # recipes are validated (NeMo, Megatron-LM) with bf16 only.
            raise ValueError(f"fp8={self.fp8!r} needs params_dtype=bf16, got {self.params_dtype!r}")
        if self.fp8_amax_history_len < 1:
            raise ValueError(f"fp8_amax_history_len must be >= 1, got {self.fp8_amax_history_len}")
        if self.fp8_margin < 0:
            raise ValueError(f"fp8_margin must be >= 0, got {self.fp8_margin}")


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adamw"] = "adamw"
    lr: float = 2e-6
    min_lr: float = 0.0
    adam_beta1: float = 0.9  # every C1 table: AdamW (0.9, 0.95)
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    clip_grad: float = 1.0
    use_distributed_optimizer: bool = True

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr and lr > 0 (lr={self.lr}, min_lr={self.min_lr})")


@dataclass(frozen=True)
class SchedulerConfig:
    type: Literal["cosine", "constant", "linear"] = "constant"
    warmup_steps: int = 0
    warmup_start_lr: float = 0.0
    # The decay's horizon in optimizer steps; 0: the stage's step count. C1 Table 14 decays over
    # "Max Steps" 100K while SFT runs 20K-41K steps, so its LR never reaches min_lr.
    decay_steps: int = 0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.decay_steps < 0:
            raise ValueError("warmup_steps and decay_steps must be >= 0")
        if self.decay_steps and self.decay_steps <= self.warmup_steps:
            raise ValueError(f"decay_steps={self.decay_steps} must exceed warmup_steps={self.warmup_steps}")


@dataclass(frozen=True)
class CheckpointConfig:
    save_interval: int = 100
    keep_last: int = 2
    async_save: bool = False
    export_hf: bool = True  # every stage writes an HF directory for vLLM and evals
    # The last step's checkpoint holds weights (and scheduler, RNG, data position) but no optimizer
    # state: the next stage loads weights only, and a 135M-parameter Adam state is twice the
    # weights. Interval and preemption saves stay complete, so a resume mid-stage is exact.
    final_weights_only: bool = True


@dataclass(frozen=True)
class WandbConfig:
    project: str
    entity: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class LoggingConfig:
    log_interval: int = 1
    tensorboard: bool = True
    wandb: WandbConfig | None = None


_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def slurm_time_seconds(text: str) -> int:
    """Seconds in a Slurm time limit: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"."""
    m = _SLURM_TIME.match(text)
    if not m:
        raise ValueError(f"time {text!r} is not a Slurm time limit (e.g. 04:00:00 or 1-00:00:00)")
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        h, mi, s = int(a), int(b or 0), int(c or 0)
        return ((int(days) * 24 + h) * 60 + mi) * 60 + s
    parts = [int(x) for x in (a, b, c) if x is not None]
    if len(parts) == 1:  # MM
        return parts[0] * 60
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


@dataclass(frozen=True)
class LaunchConfig:
    """The shape of a stage's Slurm job (read by `python -m cascade.launch generate` and `submit`).

    Cluster-specific settings (partition, account, QoS) stay out of the YAML: sbatch reads them
    from SBATCH_PARTITION / SBATCH_ACCOUNT / SBATCH_QOS. See launchers/README.md.
    """

    nodes: int | None = None  # None: the fewest nodes that hold one model replica (TP*PP*CP GPUs)
    gpus_per_node: int = 8  # 0: a CPU job (no GPU request), e.g. the toy cascade
    procs_per_node: int | None = None  # None: one process per GPU (1 for a CPU job)
    time: str = "04:00:00"  # walltime per job; a longer stage saves, requeues itself and resumes
    signal_lead_s: int = 300  # USR1 this long before the time limit: the time a save needs
    container_image: str | None = None  # pyxis/enroot image (the CONTAINER_IMAGE env var wins)
    container_mounts: list[str] = field(default_factory=list)  # extra SRC:DST mounts

    def __post_init__(self) -> None:
        if self.nodes is not None and self.nodes < 1:
            raise ValueError("nodes must be >= 1")
        if self.gpus_per_node < 0:
            raise ValueError("gpus_per_node must be >= 0")
        if self.procs_per_node is not None and self.procs_per_node < 1:
            raise ValueError("procs_per_node must be >= 1")
        if self.signal_lead_s < 0:
            raise ValueError("signal_lead_s must be >= 0")
        if self.signal_lead_s >= slurm_time_seconds(self.time):
            raise ValueError(f"signal_lead_s={self.signal_lead_s} must be shorter than time={self.time!r}")

    def tasks_per_node(self) -> int:
        """Processes started per node: one per GPU unless set (CPU jobs default to one)."""
        if self.procs_per_node is not None:
            return self.procs_per_node
        return self.gpus_per_node or 1

    def node_count(self, model_parallel_size: int) -> int:
        """Nodes to request: as set, else enough for one replica of TP*PP*CP processes."""
        if self.nodes is not None:
            return self.nodes
        per_node = self.tasks_per_node()
        return max(1, -(-model_parallel_size // per_node))


@dataclass(frozen=True, kw_only=True)
class EngineSections:
    """Mixin-like holder of the sections shared by every Megatron-trained stage kind."""

    model: ModelConfig
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)  # Slurm job shape (launchers/)
