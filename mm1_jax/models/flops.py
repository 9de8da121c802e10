"""Analytic model FLOPs of a step, from the model config and its parameters (PaLM, arXiv 2204.02311 App. B;
Kaplan et al., arXiv 2001.08361): the one formula the AOT report, the benchmarks and notebooks quote.

Per token of a transformer over T tokens: f N + 2 f L T d_attn, with N the matrices a token uses, L the layers,
d_attn = heads x head_dim, and f = 6 for a part that trains (forward 2, backward 4), 4 for a frozen part with a
trained part before it (forward and input gradients), 2 for a frozen part with nothing trained before it. Attention
is counted in full (not halved for causality: the kernels compute the masked half too). Norms, softmax and
element-wise ops are left out: they are a few percent of a step at any size worth quoting.
"""
from __future__ import annotations

import math
from typing import Mapping

import flax.linen as nn
import jax
import ml_collections
from flax import traverse_util

from mm1_jax.models import config as model_config
from mm1_jax.models import connectors, registry, summary
from mm1_jax.models.inputs import init_inputs, input_spec

PARTS = ("encoder", "connector", "decoder")


def transformer_flops_per_token(matmul_params: float, depth: int, d_attn: int, seq_len: int,
                                factor: float = 6.0) -> float:
    """FLOPs per token of a transformer: `factor` x the matrices a token uses plus its attention over `seq_len`."""
    return factor * matmul_params + 2 * factor * depth * seq_len * d_attn


def vit_sequence_length(enc: ml_collections.ConfigDict) -> int:
    """Tokens the encoder's layers run over per image: its patches plus the class token of a CLIP-style ViT (which
    the layers compute even when the features drop it)."""
    return registry.grid_size(enc.image_size, enc.patch_size) ** 2 + int(enc.style == "clip")


def logical_axes(model_cfg: ml_collections.ConfigDict) -> dict:
    """The parameters' logical axis names (`nn.get_partition_spec` of an abstract init: nothing is allocated)."""
    model = registry.build_model(model_cfg)
    example = init_inputs(model_cfg)
    boxed = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **example))["params"]
    return nn.get_partition_spec(boxed)


IMAGE_KV = ("attn/image_k_proj/", "attn/image_v_proj/", "cross/k_proj/", "cross/v_proj/")  # run on image tokens


def image_kv_params(params: dict) -> int:
    """Parameters of the decoder's image key/value projections (hyper layers' image_k_proj / image_v_proj, cross-
    attention blocks' k_proj / v_proj): matrices applied to every image token, never to a text token."""
    flat = traverse_util.flatten_dict(params.get("decoder", {}), sep="/")
    return sum(math.prod(v.shape) for k, v in flat.items() if any(n in k for n in IMAGE_KV))


def _factor(trains: Mapping[str, bool], part: str, before: tuple[str, ...]) -> float:
    """6 for a trained part, 4 for a frozen one behind a trained part, 2 otherwise (module docstring)."""
    return 6.0 if trains[part] else (4.0 if any(trains[p] for p in before) else 2.0)


def step_flops(model_cfg: ml_collections.ConfigDict, params: dict, *, rows: int, seq_len: int,
               logical: dict | None = None, trains: Mapping[str, bool] | None = None) -> dict[str, float]:
    """Model FLOPs of one training step of `rows` rows of `seq_len` tokens: {'decoder', 'encoder', 'connector',
    'total', 'tokens'}.

      decoder    f N_d T + 2 f L T^2 d_attn per row, and per image-reading layer (hyper attention or a gated
                 cross-attention block) 2 f T S d_attn for the text queries over the S image tokens of the row plus
                 f N_kv S for the image keys/values (N_kv: that layer's image K/V projections, which run on the image
                 tokens, not the text tokens, and so are left out of N_d)
      encoder    f N_e P + 2 f L_e P^2 d_e per image, for every image slot (the model encodes all of them)
      connector  f N_c P' per image (a projection per encoder token: approximate for the C-Abstractor's convolutions)

    N_d counts the decoder's matrices a token uses (MoE: top_k of the num_experts experts, read from the 'exp' logical
    axis of `logical`, derived from the config when not given); the input embedding table is a lookup, so it counts
    only when tied to the output layer. P = tokens the ViT's layers run over (`vit_sequence_length`), P' = tokens it
    hands the connector. `trains` says which parts train (default: all); `params` may be abstract (shapes only)."""
    dec, enc = model_cfg.decoder, model_cfg.encoder
    trains = dict(trains) if trains is not None else {p: True for p in PARTS}
    images = input_spec(model_cfg).max_images
    parts = summary.part_counts(params)
    get = lambda field: model_config.get(dec, "decoder", field)  # noqa: E731
    num_experts = get("num_experts")
    inactive = 0.0
    if num_experts:
        flat = traverse_util.flatten_dict(params, sep="/")
        specs = traverse_util.flatten_dict(logical if logical is not None else logical_axes(model_cfg), sep="/")
        experts = sum(math.prod(v.shape) for k, v in flat.items()
                      if k.startswith("decoder/") and "exp" in tuple(specs.get(k) or ()))
        inactive = experts * (1 - get("top_k") / num_experts)

    head_dim = get("head_dim") or dec.width // dec.num_heads
    d_attn = dec.num_heads * head_dim
    untied = 0 if get("tie_embeddings") else dec.vocab_size * dec.width
    n_dec = parts["decoder"] - inactive - untied
    p_out = registry.num_encoder_tokens(enc)
    p_vit = vit_sequence_length(enc)
    readers = len(get("hyper_layers") or ()) + len(get("cross_attention_layers") or ())
    # hyper and cross-attention layers read each image's connector outputs; the slots route has them in the
    # sequence already
    image_tokens = images * connectors.num_connector_tokens(model_cfg.connector, p_out) if readers else 0
    image_kv = image_kv_params(params)
    f_dec = _factor(trains, "decoder", ("encoder", "connector"))
    decoder = rows * seq_len * (transformer_flops_per_token(n_dec - image_kv, dec.depth, d_attn, seq_len, f_dec)
                                + 2 * f_dec * readers * image_tokens * d_attn)
    decoder += rows * f_dec * image_kv * image_tokens
    f_enc, f_con = _factor(trains, "encoder", ()), _factor(trains, "connector", ("encoder",))
    encoder = rows * images * p_vit * transformer_flops_per_token(parts["encoder"], enc.depth, enc.width, p_vit, f_enc)
    connector = rows * images * f_con * parts["connector"] * p_out
    return {"decoder": float(decoder), "encoder": float(encoder), "connector": float(connector),
            "total": float(decoder + encoder + connector), "tokens": rows * seq_len}
