"""Mixture-of-experts feed-forward block: float32 top-k router, dropless or capacity-based experts, router losses.

Routing: softmax over the router logits in float32, the top-k experts of each token, their gates renormalised to
sum to 1 (`renormalize`, Mixtral / MM1; Qwen2-MoE's default keeps the raw probabilities).

Two ways to run the experts (`mode`):
  * 'dropless': the token copies are sorted by expert and each expert's rows go through one grouped matmul
    (`jax.lax.ragged_dot`; blocked per expert on CPU), then unsorted. Nothing is dropped. Under a mesh, each
    data-parallel shard sorts its own tokens (`dropless_per_shard`).
  * 'capacity': GShard-style. Tokens are cut into groups of `group_size`; each expert takes at most
    C = ceil(capacity_factor * top_k * group_size / num_experts) tokens per group. Slots are given in priority
    order: every token's 1st choice (in token order), then every token's 2nd choice, ...; a choice that finds its
    expert full is dropped (its gate contributes nothing). Dispatch and combine are einsums, so the `exp` axis of
    the expert weights shards over the `expert` mesh axis and XLA moves tokens to their experts and back.

Losses (per MoE layer, averaged over layers by the decoder):
  load_balance = E * sum_e f_e * P_e, f_e = top-k assignments to expert e per token (counted as transformers'
                 Mixtral does, so sum_e f_e = top_k), P_e = mean router probability of expert e.
  z_loss       = mean over tokens of logsumexp(logits)^2.
transformers' `router_aux_loss` pools f and P over all layers before multiplying; `hf_router_aux_loss` reproduces it
from our per-layer statistics, and the tests check both.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mm1_jax.models import config as model_config
from mm1_jax.models import layers
from mm1_jax.models.layers import Array, constrain, with_axes

MODES = ("dropless", "capacity")


def route(logits: Array, top_k: int, renormalize: bool) -> tuple[Array, Array, Array]:
    """Router probabilities [N, E] (float32), gates [N, k] and expert ids [N, k] of the top-k choices."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    gates, experts = jax.lax.top_k(probs, top_k)
    if renormalize:
        gates = gates / jnp.sum(gates, axis=-1, keepdims=True)
    return probs, gates, experts


def router_stats(logits: Array, probs: Array, experts: Array, valid: Array) -> dict[str, Array]:
    """Per-layer statistics over valid tokens: load-balance and z losses, per-expert load, gate entropy."""
    num_experts = probs.shape[-1]
    w = valid.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(w), 1.0)
    counts = jnp.sum(jax.nn.one_hot(experts, num_experts, dtype=jnp.float32) * w[:, None, None], axis=(0, 1))
    tokens_per_expert = counts / n  # top-k assignments per token, sums to top_k
    prob_per_expert = jnp.sum(probs * w[:, None], axis=0) / n
    z = jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1)
    entropy = -jnp.sum(probs * jnp.log(jnp.maximum(probs, 1e-30)), axis=-1)
    return {
        "load_balance_loss": num_experts * jnp.sum(tokens_per_expert * prob_per_expert),
        "z_loss": jnp.sum(z**2 * w) / n,
        "tokens_per_expert": tokens_per_expert,
        "prob_per_expert": prob_per_expert,
        "gate_entropy": jnp.sum(entropy * w) / n,
    }


def hf_router_aux_loss(stats: dict[str, Array]) -> Array:
    """transformers' `router_aux_loss` from per-layer stats [L, E]: f and P pooled over layers, then multiplied."""
    num_experts = stats["tokens_per_expert"].shape[-1]
    f = jnp.mean(stats["tokens_per_expert"], axis=0)
    p = jnp.mean(stats["prob_per_expert"], axis=0)
    return num_experts * jnp.sum(f * p)


def swiglu_experts(x: Array, w_gate: Array, w_up: Array, w_down: Array, group_sizes: Array) -> Array:
    """Rows of x [R, D] sorted by expert through each expert's SwiGLU.

    TPU and GPU have grouped-matmul kernels behind `jax.lax.ragged_dot`. XLA's CPU lowering of it multiplies every
    row by every expert and masks (E times the work), so on CPU the rows are padded per expert to whole blocks and
    each block is multiplied by its own expert's weights only. The choice is made per platform when the step is
    lowered (`jax.lax.platform_dependent`), so a TPU step compiled ahead of time on a CPU host gets `ragged_dot`.
    """

    def grouped(x, w_gate, w_up, w_down, group_sizes):
        h = nn.silu(jax.lax.ragged_dot(x, w_gate, group_sizes)) * jax.lax.ragged_dot(x, w_up, group_sizes)
        return jax.lax.ragged_dot(h.astype(x.dtype), w_down, group_sizes)

    return jax.lax.platform_dependent(x, w_gate, w_up, w_down, group_sizes, cpu=blocked_swiglu_experts,
                                      default=grouped)


def blocked_swiglu_experts(
    x: Array, w_gate: Array, w_up: Array, w_down: Array, group_sizes: Array, block: int = 128
) -> Array:
    """`swiglu_experts` by blocks of `block` rows that each belong to one expert (at most E - 1 blocks of padding)."""
    rows, width = x.shape
    num_experts = w_gate.shape[0]
    block = min(block, rows)
    num_blocks = -(-(rows + num_experts * (block - 1)) // block)
    padded = -(-group_sizes // block) * block
    padded_end = jnp.cumsum(padded)
    end = jnp.cumsum(group_sizes)
    expert_of_row = jnp.searchsorted(end, jnp.arange(rows), side="right")
    dest = (padded_end - padded)[expert_of_row] + jnp.arange(rows) - (end - group_sizes)[expert_of_row]
    buffer = jnp.zeros((num_blocks * block, width), x.dtype).at[dest].set(x)
    expert_of_block = jnp.minimum(
        jnp.searchsorted(padded_end, jnp.arange(num_blocks) * block, side="right"), num_experts - 1
    )

    def one_block(args):
        xb, e = args
        h = nn.silu(xb @ w_gate[e]) * (xb @ w_up[e])
        return h.astype(xb.dtype) @ w_down[e]

    out = jax.lax.map(one_block, (buffer.reshape(num_blocks, block, width), expert_of_block))
    return out.reshape(num_blocks * block, -1)[dest]


def dropless(x: Array, gates: Array, experts: Array, w_gate: Array, w_up: Array, w_down: Array) -> Array:
    """y [N, D] = sum_k gate_k * expert_k(x): sort token copies by expert, grouped matmul, unsort, combine."""
    n, k = experts.shape
    num_experts = w_gate.shape[0]
    flat = experts.reshape(-1)
    order = jnp.argsort(flat, stable=True)
    rows = x[order // k]
    group_sizes = jnp.bincount(flat, length=num_experts).astype(jnp.int32)
    out_sorted = swiglu_experts(rows, w_gate, w_up, w_down, group_sizes)
    out = jnp.zeros_like(out_sorted).at[order].set(out_sorted)
    return jnp.einsum("nkd,nk->nd", out.reshape(n, k, -1), gates.astype(out.dtype))


def dropless_per_shard(x: Array, gates: Array, experts: Array, w_gate: Array, w_up: Array, w_down: Array) -> Array:
    """`dropless` on x [B, T, D], gates / experts [B, T, k], each data-parallel shard sorting only its own rows.

    Under a mesh (`jax.set_mesh`) whose batch axes (the `act_batch` rule) split the rows, the sort, grouped matmul
    and unsort run inside `jax.shard_map` on each shard's tokens, with the experts' weights gathered whole, as fsdp
    gathers a dense layer's. A global sort would make the partitioner gather every token copy of the batch onto
    every chip (MM1's 3B-MoE at batch 512 x 4096: hundreds of GiB per chip). Same numbers either way: a token's
    output depends only on its own experts.
    """
    b, t, d = x.shape
    k = experts.shape[-1]

    def local(x, gates, experts, w_gate, w_up, w_down):
        bl = x.shape[0]
        y = dropless(x.reshape(bl * t, d), gates.reshape(bl * t, k), experts.reshape(bl * t, k), w_gate, w_up, w_down)
        return y.reshape(bl, t, d)

    mesh = jax.sharding.get_abstract_mesh()
    batch_axes = nn.logical_to_mesh_axes(("act_batch",))[0] if not mesh.empty else None
    batch_axes = tuple(a for a in ((batch_axes,) if isinstance(batch_axes, str) else batch_axes or ())
                       if mesh.shape[a] > 1)
    if not batch_axes or b % math.prod(mesh.shape[a] for a in batch_axes):
        return local(x, gates, experts, w_gate, w_up, w_down)
    rows = jax.sharding.PartitionSpec(batch_axes)
    whole = jax.sharding.PartitionSpec()
    return jax.shard_map(local, mesh=mesh, in_specs=(rows, rows, rows, whole, whole, whole), out_specs=rows,
                         check_vma=False)(x, gates, experts, w_gate, w_up, w_down)


def capacity(group_size: int, top_k: int, num_experts: int, capacity_factor: float) -> int:
    """Slots per expert per group: ceil(capacity_factor * top_k * group_size / num_experts)."""
    return max(1, math.ceil(capacity_factor * top_k * group_size / num_experts))


def capacity_dispatch(experts: Array, num_experts: int, slots: int) -> Array:
    """dispatch [G, S, k, E, C] one-hot of (expert, slot) for each kept choice; all-zero rows are dropped choices.

    experts [G, S, k]. Priority: choice 0 of every token in order, then choice 1, ...
    """
    g, s, k = experts.shape
    onehot = jax.nn.one_hot(experts, num_experts, dtype=jnp.int32)  # [G, S, k, E]
    by_priority = jnp.swapaxes(onehot, 1, 2).reshape(g, k * s, num_experts)  # choice-major order
    position = jnp.cumsum(by_priority, axis=1) - 1  # slot index within the expert
    position = jnp.swapaxes(position.reshape(g, k, s, num_experts), 1, 2)  # back to [G, S, k, E]
    kept = onehot * (position < slots)
    return (kept[..., None] * jax.nn.one_hot(position, slots, dtype=jnp.int32)).astype(jnp.float32)


class MoeMlp(nn.Module):
    """Top-k mixture of SwiGLU experts (+ optional Qwen2-MoE shared expert with a sigmoid gate)."""

    num_experts: int
    top_k: int
    mlp_dim: int
    mode: str = "dropless"
    capacity_factor: float = 1.25
    group_size: int = 0  # capacity mode: tokens per group (0 = one sequence)
    renormalize: bool = True
    shared_mlp_dim: int = 0  # 0 = no shared expert
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, valid: Array | None = None) -> tuple[Array, dict[str, Array]]:
        """x [B, T, D], valid [B, T] (tokens that count in the statistics) -> (y [B, T, D], stats)."""
        b, t, d = x.shape
        e, f = self.num_experts, self.mlp_dim
        valid = jnp.ones((b, t), bool) if valid is None else valid
        router = self.param("router", with_axes(nn.initializers.normal(0.02), "embed", None), (d, e), jnp.float32)
        init = nn.initializers.lecun_normal(in_axis=1, out_axis=2, batch_axis=(0,))
        w_gate = self.param("wi_gate", with_axes(init, "exp", "embed", "mlp"), (e, d, f), jnp.float32)
        w_up = self.param("wi_up", with_axes(init, "exp", "embed", "mlp"), (e, d, f), jnp.float32)
        w_down = self.param("wo", with_axes(init, "exp", "mlp", "embed"), (e, f, d), jnp.float32)
        w_gate, w_up, w_down = (w.astype(self.dtype) for w in (w_gate, w_up, w_down))

        tokens = x.reshape(b * t, d).astype(self.dtype)
        logits = jnp.dot(tokens.astype(jnp.float32), router)  # router in float32
        probs, gates, experts = route(logits, self.top_k, self.renormalize)
        stats = router_stats(logits, probs, experts, valid.reshape(-1))

        if self.mode == "dropless":
            y = dropless_per_shard(tokens.reshape(b, t, d), gates.reshape(b, t, -1), experts.reshape(b, t, -1),
                                   w_gate, w_up, w_down).reshape(b * t, d)
            stats["dropped_fraction"] = jnp.zeros((), jnp.float32)
        else:
            s = self.group_size or t
            groups = (b * t) // s
            slots = capacity(s, self.top_k, e, self.capacity_factor)
            dispatch = capacity_dispatch(experts.reshape(groups, s, self.top_k), e, slots)
            combine = dispatch * gates.reshape(groups, s, self.top_k)[..., None, None]
            xg = tokens.reshape(groups, s, d)
            expert_in = jnp.einsum("gskec,gsd->egcd", dispatch.astype(self.dtype), xg)
            expert_in = constrain(expert_in, "exp", None, None, "act_embed")
            h = nn.silu(jnp.einsum("egcd,edf->egcf", expert_in, w_gate)) * jnp.einsum(
                "egcd,edf->egcf", expert_in, w_up
            )
            expert_out = jnp.einsum("egcf,efd->egcd", h, w_down)
            y = jnp.einsum("gskec,egcd->gsd", combine.astype(self.dtype), expert_out).reshape(b * t, d)
            kept = jnp.sum(dispatch, axis=(-1, -2)).reshape(b * t, self.top_k)
            w = valid.reshape(-1, 1).astype(jnp.float32)
            stats["dropped_fraction"] = jnp.sum((1.0 - kept) * w) / jnp.maximum(jnp.sum(w) * self.top_k, 1.0)

        if self.shared_mlp_dim:
            shared = layers.Mlp(self.shared_mlp_dim, dtype=self.dtype, name="shared_expert")(tokens)
            gate = nn.Dense(1, use_bias=False, dtype=jnp.float32,
                            kernel_init=with_axes(nn.initializers.zeros, "embed", None), name="shared_gate")(tokens)
            y = y + nn.sigmoid(gate).astype(self.dtype) * shared
        return y.reshape(b, t, d).astype(x.dtype), stats


def validate_moe_fields(cfg: Any, section: str = "model.decoder") -> None:
    """Errors for MoE fields of a decoder config (one sentence naming the field)."""
    get = lambda field: model_config.get(cfg, "decoder", field)  # noqa: E731
    e = get("num_experts")
    if e == 0:
        return
    if e < 0:
        raise ValueError(f"{section}.num_experts={e} must be >= 0 (0 = dense).")
    k = get("top_k")
    if not 1 <= k <= e:
        raise ValueError(f"{section}.top_k={k} must be between 1 and {section}.num_experts={e}.")
    if get("moe_mode") not in MODES:
        raise ValueError(f"{section}.moe_mode={cfg.moe_mode!r} is not one of {', '.join(MODES)}.")
    if get("capacity_factor") <= 0:
        raise ValueError(f"{section}.capacity_factor={get('capacity_factor')} must be > 0.")
    every = get("moe_every")
    if every < 1 or cfg.depth % every and get("scan_layers"):
        raise ValueError(
            f"{section}.moe_every={every} must be >= 1 and divide {section}.depth={cfg.depth} when layers are scanned."
        )


def upcycle(dense: dict, decoder_cfg: Any, rng: jax.Array) -> dict:
    """Sparse upcycling: unscanned dense decoder params -> MoE params (every expert a copy of the layer's FFN).

    The router is drawn fresh (normal, std 0.02); with renormalised gates the MoE model computes exactly what the
    dense one did, whatever the router says.
    """
    e = decoder_cfg.num_experts
    every = model_config.get(decoder_cfg, "decoder", "moe_every")
    out = dict(dense)
    for i in range(decoder_cfg.depth):
        if (i + 1) % every:
            continue
        layer = dict(dense[f"layer_{i}"])
        mlp = layer.pop("mlp")
        tile = lambda w: jnp.broadcast_to(jnp.asarray(w)[None], (e,) + tuple(w.shape))  # noqa: E731
        router = 0.02 * jax.random.normal(jax.random.fold_in(rng, i), (decoder_cfg.width, e), jnp.float32)
        layer["moe"] = {
            "router": router,
            "wi_gate": tile(mlp["gate_proj"]["kernel"]),
            "wi_up": tile(mlp["up_proj"]["kernel"]),
            "wo": tile(mlp["down_proj"]["kernel"]),
        }
        out[f"layer_{i}"] = layer
    return out
