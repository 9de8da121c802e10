"""Model configs of the papers' sizes, as plain dicts / ConfigDicts for `configs/*.py` and notebooks.

MM1 and MM1.5 do not publish their decoder shapes. We choose Llama-style shapes (head dim 128, SwiGLU FFN about
2.7x the width, untied embeddings from 3B up, a 32k vocabulary) that land within 5% of each nominal size; the
summary command prints the exact counts (`python -m mm1_jax.models.summary`).
"""
from __future__ import annotations

import ml_collections

from mm1_jax.models.vit import VIT_PRESETS

VOCAB = 32000

DECODER_PRESETS: dict[str, dict] = {
    # 0.99B: 2048 wide, 18 layers, tied embeddings (as small Llama-3.2 / Qwen2 models do).
    "1b": dict(width=2048, depth=18, num_heads=16, num_kv_heads=16, mlp_dim=5632, tie_embeddings=True),
    # 3.02B: 2560 wide, 36 layers.
    "3b": dict(width=2560, depth=36, num_heads=20, num_kv_heads=20, mlp_dim=6912, tie_embeddings=False),
    # 6.84B: Llama-2-7B's width and depth, 8 KV heads and a 13312 FFN, so that MM1's 7B-MoE (32 experts every
    # 4th layer) comes to its stated ~47B total (47.4B here).
    "7b": dict(width=4096, depth=32, num_heads=32, num_kv_heads=8, mlp_dim=13312, tie_embeddings=False),
    # 30.4B: Llama-30B's width and FFN with 56 instead of 60 layers.
    "30b": dict(width=6656, depth=56, num_heads=52, num_kv_heads=52, mlp_dim=17920, tie_embeddings=False),
}
NOMINAL_PARAMS = {"1b": 1e9, "3b": 3e9, "7b": 7e9, "30b": 30e9}

# MM1 (sec. 3.4 / appendix) and MM1.5: top-2 experts, load-balance 0.01, router z-loss 0.001.
MOE_PRESETS: dict[str, dict] = {
    "3b-moe": dict(base="3b", num_experts=64, moe_every=2),  # MM1: ~64B total (63.2B here)
    "7b-moe": dict(base="7b", num_experts=32, moe_every=4),  # MM1: ~47B total (47.4B here)
    "1b-moe": dict(base="1b", num_experts=64, moe_every=2),  # MM1.5
}


def decoder_config(size: str, **overrides) -> ml_collections.ConfigDict:
    """`config.model.decoder` for a nominal size ('1b', '3b', '7b', '30b', or an MoE one: '3b-moe', ...)."""
    moe = {}
    if size in MOE_PRESETS:
        moe = dict(MOE_PRESETS[size], top_k=2, moe_mode="dropless", load_balance_weight=0.01, z_loss_weight=0.001)
        size = moe.pop("base")
    if size not in DECODER_PRESETS:
        choices = list(DECODER_PRESETS) + list(MOE_PRESETS)
        raise ValueError(f"decoder size {size!r} is not one of {', '.join(choices)}.")
    fields = dict(vocab_size=VOCAB, rope_theta=10000.0, qkv_bias=False, norm_eps=1e-5, scan_layers=True,
                  remat_policy="full", hyper_layers=(),  # hyper_layers: e.g. --config.model.decoder.hyper_layers=(1,3)
                  hyper_gate=True, hyper_shared_norm=True, hyper_mi_rope=True,  # the hyper block's parts (Owl3 v2 T10)
                  # gated cross-attention blocks (Flamingo-style) 'pre' / 'post' self-attention (Owl3 v2 T8)
                  cross_attention_layers=(), cross_attention_position="pre",
                  attention="xla")  # or 'cudnn' on an NVIDIA GPU
    fields.update(DECODER_PRESETS[size], **moe, **overrides)
    return ml_collections.ConfigDict(fields)


def encoder_config(name: str, **overrides) -> ml_collections.ConfigDict:
    """`config.model.encoder` for one of the papers' encoders (`mm1_jax.models.vit.VIT_PRESETS`)."""
    if name not in VIT_PRESETS:
        raise ValueError(f"encoder {name!r} is not one of {', '.join(VIT_PRESETS)}.")
    return ml_collections.ConfigDict({**VIT_PRESETS[name], **overrides})


def connector_config(name: str = "c_abstractor", num_tokens: int = 144, **overrides) -> ml_collections.ConfigDict:
    """`config.model.connector`; HoneyBee / MM1 defaults for the C-Abstractor (depth 3, mlp_depth 2, width 1024)."""
    fields = dict(name=name, num_tokens=num_tokens, hidden_dim=1024, depth=3, mlp_depth=2, num_heads=8)
    fields.update(overrides)
    return ml_collections.ConfigDict(fields)


def model_config(
    decoder: str = "3b",
    encoder: str = "clip_vit_h14_378",
    connector: str = "c_abstractor",
    num_tokens: int = 144,
    max_images: int = 16,
    dtype: str = "bfloat16",
) -> ml_collections.ConfigDict:
    """A whole `config.model`: MM1's final recipe by default (ViT-H/14 @378, C-Abstractor with 144 tokens).

    The C-Abstractor's width is the encoder's (MM1 does not state it; HoneyBee uses 1024 for ViT-L). The encoder's
    layers are scanned and rematerialised like the decoder's: at 16 images per row its activations, not the decoder's,
    set the step's memory (compiled for TPU with `mm1_jax.train.aot`: docs/aot.md).
    """
    enc = encoder_config(encoder, scan=True, remat=True)
    return ml_collections.ConfigDict(
        dict(
            encoder=enc,
            connector=connector_config(connector, num_tokens, hidden_dim=enc.width),
            decoder=decoder_config(decoder),
            max_images=max_images,
            dtype=dtype,
        )
    )
