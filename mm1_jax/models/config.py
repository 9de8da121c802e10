"""The model config's defaults: every field of `config.model` a config may leave out, with its default and why.

One owner: the validators and the builder (`registry`), `inputs.input_spec`, the summary and the FLOP count read a
field a config leaves out here (`get`), never with a default of their own. The Flax modules keep dataclass defaults
for direct use (`Decoder(**dims)`); tests/test_model_config.py checks that those agree with these.

Sections: 'model' (the top level of either kind), 'owl3' (the top level of an mPLUG-Owl3 config), 'encoder' (ViT),
'connector', 'decoder'. The fields a section must set (sizes, the connector's name) have no default.
"""
from __future__ import annotations

from typing import Any

KINDS = ("mm1", "owl3")  # model.kind: which model `registry.build_model` assembles

MODEL: dict[str, Any] = dict(
    kind="mm1",  # 'mm1': encoder -> connector -> decoder (`mm1.MM1`); 'owl3': mPLUG-Owl3 (`owl3.Owl3`)
    max_images=16,  # images (crops count one each) per row; MM1: at most 16 images per sequence
    dtype="float32",  # compute dtype of every part ('float32', 'bfloat16', 'float16'); parameters stay float32
)

OWL3: dict[str, Any] = dict(
    projector_depth=1,  # vision2text: 1 Linear (release 240728) or Linear-GELU-Linear (2, release 241101)
    image_token_id=None,  # the tokenizer's <|image|> id; None: pass it at call time
)

ENCODER: dict[str, Any] = dict(
    feature_layer=-1,  # the hidden state the connector reads (MM1: the last layer)
    feature_norm=False,  # that hidden state without the final norm (MM1, mPLUG-Owl3)
    drop_class_token=True,  # the connector reads patch tokens only
    allow_partial_patches=False,  # image_size must be a multiple of patch_size unless set
    use_head=False,  # no pooling head: the connector reads patch tokens
    activation="",  # '' / None: the style's (vit.STYLES)
    pos_embed="",
    attn_bias=None,
    mlp_bias=None,
    remat=False,
    scan=False,
)

CONNECTOR: dict[str, Any] = dict(
    hidden_dim=None,  # the C-Abstractor's width; None: the encoder's
    pos_emb=True,  # the C-Abstractor adds a learned position table first (HoneyBee)
)

DECODER: dict[str, Any] = dict(
    head_dim=None,  # None: width // num_heads
    rope_theta=10000.0,
    qkv_bias=False,  # Qwen2: True
    tie_embeddings=False,
    norm_eps=1e-5,
    scan_layers=False,
    remat_policy="none",
    # Mixture of experts: layer i has an MoE FFN when num_experts > 0 and (i + 1) % moe_every == 0.
    num_experts=0,  # 0: dense
    top_k=2,  # MM1: top-2 routing
    moe_every=1,
    expert_mlp_dim=0,  # 0: mlp_dim
    shared_expert_mlp_dim=0,  # Qwen2-MoE's shared expert (0: none)
    moe_mode="dropless",  # or 'capacity'
    capacity_factor=1.25,  # capacity mode: slots per expert = factor * tokens * top_k / experts (GShard)
    moe_group_size=0,  # capacity mode: tokens per routing group (0: one sequence)
    router_renormalize=True,
    load_balance_weight=0.01,  # MM1: 0.01
    z_loss_weight=0.001,  # MM1: 0.001
    hyper_layers=(),  # mPLUG-Owl3 hyper attention: zero-based indices of the layers that also read the images
    hyper_gate=True,  # the hyper block's parts, all on as released (mPLUG-Owl3 v2 Table 10 ablates them)
    hyper_shared_norm=True,
    hyper_mi_rope=True,
    # Flamingo-style gated cross-attention blocks (mPLUG-Owl3 v2 Table 8; `cross_attention`): zero-based indices of the
    # layers that get one (none of them a hyper layer), placed 'pre' (before the layer's self-attention, as Flamingo)
    # or 'post' (after it)
    cross_attention_layers=(),
    cross_attention_position="pre",
    attention="xla",  # or 'cudnn' on an NVIDIA GPU (layers.ATTENTION_KINDS)
)

SECTIONS: dict[str, dict[str, Any]] = dict(model=MODEL, owl3=OWL3, encoder=ENCODER, connector=CONNECTOR,
                                           decoder=DECODER)


def default(section: str, field: str) -> Any:
    """The owner's default of `field` in `section` ('model', 'owl3', 'encoder', 'connector', 'decoder')."""
    return SECTIONS[section][field]


def get(cfg: Any, section: str, field: str) -> Any:
    """`cfg`'s value of `field`, or the owner's default when `cfg` leaves the field out."""
    return cfg.get(field, SECTIONS[section][field])


def with_defaults(cfg: Any, section: str) -> dict[str, Any]:
    """A plain dict of `cfg`'s fields over the owner's defaults of `section` (what a builder hands a module)."""
    fields = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    return {**SECTIONS[section], **fields}


def model_kind(cfg: Any) -> str:
    """`model.kind` ('mm1' when left out); ValueError naming a kind that is not one of KINDS."""
    kind = get(cfg, "model", "kind")
    if kind not in KINDS:
        raise ValueError(f"model.kind={kind!r} is not one of {', '.join(KINDS)}.")
    return kind
