"""Decoder of the Llama / Qwen2 family: embed -> N x (RMSNorm, attention, RMSNorm, FFN) -> norm -> logits.

Every layer has a kind (block, MoE?), the way MaxText picks a block per layer: its FFN is dense SwiGLU or a mixture
of experts (`num_experts`, `moe_every`); its block (`BLOCKS`) is
  'self'        GQA self-attention;
  'hyper'       at `hyper_layers`: self-attention plus mPLUG-Owl3's gated cross-attention to image features in
                parallel (`hyper_attention.HyperAttention`; mPLUG-Owl3, arXiv 2408.04840, Sec. 3);
  'cross_pre'   at `cross_attention_layers` with `cross_attention_position='pre'`: a Flamingo-style gated
                cross-attention block (`cross_attention.GatedCrossAttention`, parameters layer_{i}/cross) before the
                self-attention sub-layer;
  'cross_post'  the same block after the self-attention sub-layer, before the FFN (mPLUG-Owl3 v2 Table 8's rows).
Parameters are named the same whatever the kind: layer_{i}/{input_norm, attn, post_attn_norm, mlp | moe[, cross]},
embed_tokens, final_norm, lm_head.

Layers can be scanned (`scan_layers`: parameters stacked on a leading 'layers' axis) and rematerialised
(`remat_policy`); scanned and unscanned give the same numbers. When the layers are not all of one kind, the scanned
unit is a `LayerGroup` of the shortest repeating run of kinds (period p, parameters layers/sub_j for j < p, as
`stack_layers(params, depth, p)` lays them out): MoE every n-th layer gives p = n, hyper layers (1, 3) of 4 give
p = 2. `scan_period` finds p; the config check refuses hyper or cross-attention layers that do not repeat. The
decoder takes token ids or ready-made input embeddings, so the MM1 model can put image embeddings into the sequence
first.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from mm1_jax.models import layers
from mm1_jax.models.cross_attention import GatedCrossAttention, check_cross_attention
from mm1_jax.models.hyper_attention import HyperAttention, check_hyper_layers, check_images
from mm1_jax.models.layers import Array, constrain, with_axes
from mm1_jax.models.moe import MoeMlp

REMAT_POLICIES = {
    "none": None,  # no rematerialisation
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
    # as "full", but each layer's input (what a scanned decoder keeps per layer for the backward pass) waits in the
    # host's memory instead of HBM (MaxText's `decoder_layer_input` offloading)
    "full_offload": jax.checkpoint_policies.save_and_offload_only_these_names(
        names_which_can_be_saved=(), names_which_can_be_offloaded=("decoder_layer_input",),
        offload_src="device", offload_dst="pinned_host"),
}


BLOCKS = ("self", "hyper", "cross_pre", "cross_post")  # a layer's block kind (module docstring)
Kind = tuple[str, bool]  # (block, MoE FFN?)


def layer_kinds(depth: int, hyper_layers: Sequence[int] = (), num_experts: int = 0, moe_every: int = 1,
                cross_attention_layers: Sequence[int] = (), cross_attention_position: str = "pre"
                ) -> tuple[Kind, ...]:
    """(block, MoE FFN?) of every layer: the block is 'hyper' at hyper_layers, 'cross_pre' / 'cross_post' (by
    cross_attention_position) at cross_attention_layers, 'self' elsewhere; layer i is MoE when num_experts > 0 and
    (i + 1) % moe_every == 0."""
    hyper, cross = set(hyper_layers), set(cross_attention_layers)
    blocks = ["hyper" if i in hyper else f"cross_{cross_attention_position}" if i in cross else "self"
              for i in range(depth)]
    return tuple((blocks[i], num_experts > 0 and (i + 1) % moe_every == 0) for i in range(depth))


def block_fields(block: str) -> dict:
    """The `DecoderLayer` fields that make a layer of block kind `block` (`BLOCKS`)."""
    if block not in BLOCKS:
        raise ValueError(f"decoder block kind {block!r} is not one of {', '.join(BLOCKS)}.")
    return dict(hyper=block == "hyper", cross_attention=block[len("cross_"):] if block.startswith("cross_") else "")


def scan_period(kinds: Sequence[Kind]) -> int:
    """The shortest p dividing the depth with kinds[i] == kinds[i % p] for every layer (p = depth if none shorter)."""
    depth = len(kinds)
    for p in range(1, depth + 1):
        if depth % p == 0 and all(kinds[i] == kinds[i % p] for i in range(depth)):
            return p
    return max(depth, 1)


class DecoderLayer(nn.Module):
    """One pre-norm transformer block of one kind: `hyper` picks the attention, `cross_attention` adds a gated
    cross-attention block ('pre': before the self-attention sub-layer, 'post': after it;
    `cross_attention.GatedCrossAttention`), `moe` picks the FFN.

    A hyper layer's attention is `HyperAttention` and its input norm also normalises the images (the released
    `modeling_hyper_qwen2.py` shares `input_layernorm`); images and image_index only reach hyper and cross-attention
    layers. The `hyper_*` switches (`Decoder`'s, see `hyper_attention`) only change hyper layers:
    hyper_shared_norm=False gives the images their own RMSNorm `image_norm` (initialised as input_norm), hyper_gate /
    hyper_mi_rope go to the attention. A cross-attention layer hands the images to its block `cross`, which norms
    them itself.
    Returns (x, MoE statistics or None) so it can be the body of `nn.scan`.
    """

    width: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    rope_theta: float
    qkv_bias: bool
    norm_eps: float
    dtype: Any
    moe: dict | None = None  # MoeMlp fields for an MoE layer
    hyper: bool = False  # self + hyper cross-attention to the images
    hyper_gate: bool = True
    hyper_shared_norm: bool = True
    hyper_mi_rope: bool = True
    cross_attention: str = ""  # '' (none), 'pre' or 'post': a gated cross-attention block before / after self-attn
    attention: str = "xla"

    def _cross(self, x: Array, images: Array | None, image_index: Array | None, segment_ids: Array,
               decode: bool) -> Array:
        return GatedCrossAttention(self.num_heads, self.num_kv_heads, self.head_dim, self.mlp_dim, self.norm_eps,
                                   dtype=self.dtype, name="cross")(x, images, image_index, segment_ids=segment_ids,
                                                                   decode=decode)

    @nn.compact
    def __call__(self, x: Array, positions: Array, segment_ids: Array, decode: bool = False,
                 images: Array | None = None, image_index: Array | None = None):
        x = checkpoint_name(x, "decoder_layer_input")  # named for the "full_offload" remat policy
        if self.cross_attention == "pre":
            x = self._cross(x, images, image_index, segment_ids, decode)
        norm = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="input_norm")
        if self.hyper:
            if images is not None:
                image_norm = norm if self.hyper_shared_norm else layers.RMSNorm(self.norm_eps, dtype=self.dtype,
                                                                                name="image_norm")
                images = image_norm(images)
            h = HyperAttention(self.num_heads, self.num_kv_heads, self.head_dim, self.qkv_bias, self.rope_theta,
                               dtype=self.dtype, gate=self.hyper_gate, mi_rope=self.hyper_mi_rope, name="attn")(
                norm(x), images, image_index, positions=positions, segment_ids=segment_ids, decode=decode)
        else:
            h = layers.Attention(
                num_heads=self.num_heads,
                num_kv_heads=self.num_kv_heads,
                head_dim=self.head_dim,
                qkv_bias=self.qkv_bias,
                rope_theta=self.rope_theta,
                implementation=self.attention,
                dtype=self.dtype,
                name="attn",
            )(norm(x), positions=positions, segment_ids=segment_ids, decode=decode)
        x = x + h
        if self.cross_attention == "post":
            x = self._cross(x, images, image_index, segment_ids, decode)
        h = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="post_attn_norm")(x)
        stats = None
        if self.moe:
            h, stats = MoeMlp(**self.moe, dtype=self.dtype, name="moe")(h, valid=segment_ids > 0)
        else:
            h = layers.Mlp(self.mlp_dim, gated=True, activation="silu", dtype=self.dtype, name="mlp")(h)
        return constrain(x + h, "act_batch", "act_len", "act_embed"), stats


class LayerGroup(nn.Module):
    """Consecutive layers of the given kinds ((block, moe) each): the unit scanned when the kinds repeat."""

    layer_kwargs: dict
    moe: dict | None
    kinds: tuple[Kind, ...]

    @nn.compact
    def __call__(self, x: Array, positions: Array, segment_ids: Array, decode: bool = False,
                 images: Array | None = None, image_index: Array | None = None):
        stats = []
        for j, (block, is_moe) in enumerate(self.kinds):
            layer = DecoderLayer(**self.layer_kwargs, moe=self.moe if is_moe else None, **block_fields(block),
                                 name=f"sub_{j}")
            x, s = layer(x, positions, segment_ids, decode, images, image_index)
            if s is not None:
                stats.append(s)
        # [MoE layers in the group, ...]; the scan stacks groups in front, flattened back to layer order below
        return x, jax.tree.map(lambda *v: jnp.stack(v), *stats) if stats else None


class Decoder(nn.Module):
    """Llama / Qwen2-style causal LM. Fields are `config.model.decoder`."""

    vocab_size: int
    width: int
    depth: int
    num_heads: int
    num_kv_heads: int
    mlp_dim: int
    head_dim: int | None = None  # default width // num_heads
    rope_theta: float = 10000.0
    qkv_bias: bool = False
    tie_embeddings: bool = False
    norm_eps: float = 1e-5
    scan_layers: bool = False
    remat_policy: str = "none"
    # Mixture of experts: layer i has an MoE FFN when num_experts > 0 and (i + 1) % moe_every == 0.
    num_experts: int = 0
    top_k: int = 2
    moe_every: int = 1
    expert_mlp_dim: int = 0  # 0 = mlp_dim
    shared_expert_mlp_dim: int = 0  # Qwen2-MoE shared expert (0 = none)
    moe_mode: str = "dropless"  # or 'capacity'
    capacity_factor: float = 1.25
    moe_group_size: int = 0  # capacity mode: tokens per routing group (0 = one sequence)
    router_renormalize: bool = True
    load_balance_weight: float = 0.01  # MM1: 0.01
    z_loss_weight: float = 0.001  # MM1: 0.001
    # mPLUG-Owl3 hyper attention: zero-based indices of the layers whose attention also reads the images.
    hyper_layers: tuple[int, ...] = ()
    # The hyper block's parts (mPLUG-Owl3 v2 Table 10 ablates them; all on = the released model, see
    # `hyper_attention`): the gate (False: S + C), the images normed by the layer's input_norm (False: their own
    # `image_norm`), MI-Rope on the image keys (False: no rotary embedding on them).
    hyper_gate: bool = True
    hyper_shared_norm: bool = True
    hyper_mi_rope: bool = True
    # Flamingo-style gated cross-attention blocks (mPLUG-Owl3 v2 Table 8's pre-/post-cross-attention rows; see
    # `cross_attention`): zero-based indices of the layers that get one, placed before ('pre') or after ('post') the
    # layer's self-attention. No layer is both a hyper and a cross-attention layer.
    cross_attention_layers: tuple[int, ...] = ()
    cross_attention_position: str = "pre"
    # Self-attention kernel of the non-hyper layers (`layers.ATTENTION_KINDS`): 'xla' (ours, any backend) or
    # 'cudnn' (cuDNN's fused flash attention through `jax.nn.dot_product_attention`; NVIDIA GPU, bf16).
    attention: str = "xla"
    dtype: Any = jnp.float32

    def moe_fields(self) -> dict:
        return dict(
            num_experts=self.num_experts,
            top_k=self.top_k,
            mlp_dim=self.expert_mlp_dim or self.mlp_dim,
            mode=self.moe_mode,
            capacity_factor=self.capacity_factor,
            group_size=self.moe_group_size,
            renormalize=self.router_renormalize,
            shared_mlp_dim=self.shared_expert_mlp_dim,
        )

    def kinds(self) -> tuple[Kind, ...]:
        """(block, moe) per layer (`layer_kinds`)."""
        return layer_kinds(self.depth, tuple(self.hyper_layers), self.num_experts, self.moe_every,
                           tuple(self.cross_attention_layers), self.cross_attention_position)

    def reads_images(self) -> bool:
        """Whether some layer reads image features (hyper or cross-attention layers): the placeholder image route."""
        return bool(tuple(self.hyper_layers) or tuple(self.cross_attention_layers))

    def is_moe_layer(self, i: int) -> bool:
        return self.kinds()[i][1]

    def setup(self):
        check_hyper_layers(self.hyper_layers, self.depth)
        check_cross_attention(self.cross_attention_layers, self.cross_attention_position, self.hyper_layers,
                              self.depth)
        self.embedder = nn.Embed(
            self.vocab_size,
            self.width,
            embedding_init=with_axes(nn.initializers.normal(stddev=0.02), "vocab", "embed"),
            dtype=self.dtype,  # the lookup and the tied output layer compute in the compute dtype, as lm_head does
            name="embed_tokens",
        )
        kwargs = dict(
            width=self.width,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim or self.width // self.num_heads,
            mlp_dim=self.mlp_dim,
            rope_theta=self.rope_theta,
            qkv_bias=self.qkv_bias,
            norm_eps=self.norm_eps,
            dtype=self.dtype,
            hyper_gate=self.hyper_gate,
            hyper_shared_norm=self.hyper_shared_norm,
            hyper_mi_rope=self.hyper_mi_rope,
            attention=self.attention,
        )
        moe = self.moe_fields() if self.num_experts else None
        kinds = self.kinds()

        def remat(body):
            if self.remat_policy == "none":
                return body
            return nn.remat(body, policy=REMAT_POLICIES[self.remat_policy], static_argnums=(4,))

        if self.scan_layers:
            period = scan_period(kinds)
            if period == 1:  # every layer alike: the scanned unit is the layer, params 'layers' [depth, ...]
                block, is_moe = kinds[0]
                body, body_kwargs = DecoderLayer, dict(**kwargs, moe=moe if is_moe else None, **block_fields(block))
            else:  # params layers/sub_j [depth / period, ...]
                body, body_kwargs = LayerGroup, dict(layer_kwargs=kwargs, moe=moe, kinds=kinds[:period])
            self.layers = nn.scan(
                remat(body),
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast,) * 5,  # positions, segment_ids, decode, images, image_index
                length=self.depth // period,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(**body_kwargs, name="layers")
        else:
            self.layers = [
                remat(DecoderLayer)(**kwargs, moe=moe if is_moe else None, **block_fields(block), name=f"layer_{i}")
                for i, (block, is_moe) in enumerate(kinds)
            ]
        self.final_norm = layers.RMSNorm(self.norm_eps, dtype=self.dtype, name="final_norm")
        if not self.tie_embeddings:
            self.lm_head = nn.Dense(
                self.vocab_size,
                use_bias=False,
                dtype=self.dtype,
                kernel_init=with_axes(nn.initializers.normal(stddev=0.02), "embed", "vocab"),
                name="lm_head",
            )

    def embed(self, tokens: Array) -> Array:
        """Token embeddings [B, T, D] in the compute dtype."""
        return self.embedder(tokens).astype(self.dtype)

    def __call__(
        self,
        tokens: Array | None = None,
        *,
        inputs_embeds: Array | None = None,
        images: Array | None = None,
        image_index: Array | None = None,
        positions: Array | None = None,
        segment_ids: Array | None = None,
        decode: bool = False,
        return_hidden_states: bool = False,
    ) -> dict[str, Any]:
        """Logits [B, T, V] (float32) from `tokens` [B, T] or `inputs_embeds` [B, T, D].

        `images` [B, M, Lv, D] (decoder width) with `image_index` [B, M] (each image's placeholder index, -1 =
        absent; see `hyper_attention`) are read by the hyper and cross-attention layers only. With decode=True pass
        them on the prefill call; later one-token steps read the cached image keys/values.

        Returns {'logits', 'hidden_states' (tuple: embeddings then every layer's output, the last one after the
        final norm as in transformers; only when asked)} and, with MoE layers, 'moe_stats' and 'moe_loss'.
        """
        x = self.embed(tokens) if inputs_embeds is None else inputs_embeds.astype(self.dtype)
        b, t = x.shape[:2]
        positions, segment_ids = layers.default_layout(positions, segment_ids, b, t)
        if images is not None:
            if not self.reads_images():
                raise ValueError("images were given to a decoder without hyper layers or cross-attention layers "
                                 "(decoder.hyper_layers and decoder.cross_attention_layers are empty).")
            check_images(images, image_index, b)
            images = images.astype(self.dtype)
        x = constrain(x, "act_batch", "act_len", "act_embed")

        hidden, stats = [x], []
        if self.scan_layers:
            if return_hidden_states:
                raise ValueError("decoder.return_hidden_states needs decoder.scan_layers=False.")
            x, stacked = self.layers(x, positions, segment_ids, decode, images, image_index)
            if stacked is not None:  # [groups, MoE layers per group, ...] or [layers, ...] -> layer order
                grouped = scan_period(self.kinds()) > 1
                stats = [jax.tree.map(lambda v: v.reshape((-1,) + v.shape[2:]), stacked) if grouped else stacked]
        else:
            for layer in self.layers:
                x, s = layer(x, positions, segment_ids, decode, images, image_index)
                hidden.append(x)
                if s is not None:
                    stats.append(jax.tree.map(lambda v: v[None], s))
        x = self.final_norm(x)
        if self.tie_embeddings:
            logits = self.embedder.attend(x)
        else:
            logits = self.lm_head(x)
        out = {"logits": constrain(logits.astype(jnp.float32), "act_batch", "act_len", "vocab")}
        if return_hidden_states:
            out["hidden_states"] = tuple(hidden[:-1]) + (x,)
        if stats:  # per MoE layer [L_moe, ...], and the weighted auxiliary loss the trainer adds
            moe_stats = jax.tree.map(lambda *v: jnp.concatenate(v), *stats)
            out["moe_stats"] = moe_stats
            out["moe_loss"] = self.load_balance_weight * jnp.mean(
                moe_stats["load_balance_loss"]
            ) + self.z_loss_weight * jnp.mean(moe_stats["z_loss"])
        return out


def token_loss(logits: Array, targets: Array, weights: Array) -> tuple[Array, Array]:
    """Per-token cross-entropy [B, T] (float32) and the weighted mean over tokens with weight > 0."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    weights = weights.astype(jnp.float32)
    mean = jnp.sum(nll * weights) / jnp.maximum(jnp.sum(weights), 1e-8)
    return nll * weights, mean


def _stack(trees: list) -> Any:
    """Same-structured trees stacked on a new leading axis; numpy stays numpy (converted weights stay on the host)."""
    def stack(*xs):
        return np.stack(xs) if all(isinstance(x, np.ndarray) for x in xs) else jnp.stack(xs)

    return jax.tree.map(stack, *trees)


def stack_layers(params: dict, depth: int, period: int = 1) -> dict:
    """Unscanned params (layer_0..layer_{n-1}) -> the scanned layout ('layers', leading axis n / period); the one
    layout of every scanned stack (decoder, ViT), used by conversion, `pretrained` and tests.

    period > 1 groups layers by kind (`scan_period`): layers/sub_j holds layers j, j + period, j + 2 * period, ...
    """
    if period < 1 or depth % period:
        raise ValueError(f"a scan period of {period} does not divide the depth {depth}.")
    out = {k: v for k, v in params.items() if not k.startswith("layer_")}
    if period == 1:
        out["layers"] = _stack([params[f"layer_{i}"] for i in range(depth)])
    else:
        out["layers"] = {f"sub_{j}": _stack([params[f"layer_{g * period + j}"] for g in range(depth // period)])
                         for j in range(period)}
    return out


def stacked_period(params: dict) -> int:
    """The scan period of scanned params: the number of layers/sub_j groups, 1 when the layers are not grouped."""
    return sum(1 for k in params["layers"] if str(k).startswith("sub_")) or 1


def unstack_layers(params: dict) -> dict:
    """Scanned decoder params (either layout of `stack_layers`) -> unscanned layout."""
    out = {k: v for k, v in params.items() if k != "layers"}
    groups = params["layers"]
    period = stacked_period(params)
    subs = [f"sub_{j}" for j in range(period)]
    if period == 1:
        groups = {"sub_0": groups}
    n = jax.tree.leaves(groups["sub_0"])[0].shape[0]
    for g in range(n):
        for j, sub in enumerate(subs):
            out[f"layer_{g * period + j}"] = jax.tree.map(lambda x: x[g], groups[sub])
    return out
