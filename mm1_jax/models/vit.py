"""ViT image encoders of the MM1 / MM1.5 / mPLUG-Owl3 papers: CLIP, SigLIP, AIM v1 and AIMv2 in one module.

`ViT(**config.model.encoder)(images [B, H, W, 3])` returns a dict:
  features           [B, N, C]  what the connector consumes: hidden_states[feature_layer], optionally through the
                                final norm (`feature_norm`), without the class token (`drop_class_token`).
  last_hidden_state  [B, N(+1), C] as transformers defines it: CLIP without the final norm; SigLIP, AIM v1 and
                                AIMv2 with it.
  pooled             [B, C]     CLIP: final norm of the class token; SigLIP / AIMv2: attention-pool head
                                (`use_head`); absent otherwise.
  hidden_states      tuple of depth + 1 [B, N(+1), C], numbered as transformers' output_hidden_states: 0 is the
                                encoder input (embeddings, after CLIP's pre-norm), i is the output of layer i.
Images of another resolution than `image_size` get bicubically interpolated position embeddings (torch's kernel, as
transformers' interpolate_pos_encoding=True); sin-cos embeddings are recomputed for the new grid.

Parameter names (ours <- transformers; `E.` = `embeddings.`, `L.` = `encoder.layers.{i}.`; weights are transposed,
attention kernels reshaped to [embed, heads, head_dim] / [heads, head_dim, embed]; see mm1_jax.convert.vit_weights):
  patch_embed/{kernel,bias}          <- E.patch_embedding (CLIP, SigLIP) | E.patch_embed (AIMv2) | patchifier.proj
  patch_norm                         <- E.rms_norm (AIMv2) | patchifier.norm (AIM v1)
  class_token                        <- E.class_embedding (CLIP)
  pos_embed                          <- E.position_embedding.weight
  pre_norm                           <- pre_layrnorm (CLIP)
  layer_{i}/norm1, norm2             <- L.layer_norm1, layer_norm2 | L.rms_norm1, rms_norm2 (AIMv2)
  layer_{i}/attn/{q,k,v}_proj        <- L.self_attn.{q,k,v}_proj | L.attention.{q,k,v}_proj (AIMv2)
  layer_{i}/attn/o_proj              <- L.self_attn.out_proj | L.attention.out_proj (AIMv2)
  layer_{i}/mlp/fc1, fc2             <- L.mlp.fc1, fc2
  layer_{i}/mlp/{gate,up,down}_proj  <- L.ffn.{gate,up,down}_proj (AIMv2)
  post_norm                          <- post_layernorm | rms_norm (AIMv2)
  head/probe, head/attn/*, head/norm, head/mlp/*  <- head.probe, head.attention.in_proj/out_proj, head.layernorm,
                                        head.mlp (SigLIP multihead attention pooling)
  head/query, head/{k,v,o}_proj      <- head.cls_token, head.{k,v}_proj, head.output_proj (AIMv2)
With `scan=True` the layers are one `layers/...` subtree whose parameters have a leading depth axis.
LayerNorm parameters sit one level deeper (`norm1/norm/{scale,bias}`), RMSNorm's at `norm1/scale`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mm1_jax.models import config as model_config
from mm1_jax.models import layers

Array = jax.Array

# Pixel statistics (mean, std) by `image_norm` name: what the released weights were trained with. CLIP (OpenAI / DFN,
# also AIMv2), SigLIP ([0, 1] -> [-1, 1]), ImageNet (AIMv1). Which one an encoder takes is its style's `image_norm`.
NORMS: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "clip": (
        np.array([0.48145466, 0.4578275, 0.40821073], np.float32),
        np.array([0.26862954, 0.26130258, 0.27577711], np.float32),
    ),
    "siglip": (np.array([0.5, 0.5, 0.5], np.float32), np.array([0.5, 0.5, 0.5], np.float32)),
    "imagenet": (np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)),
}


def norm_stats(norm: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) float32 [3] of an encoder's pixel statistics; ValueError naming a bad name."""
    if norm not in NORMS:
        raise ValueError(f"image_norm must be one of {sorted(NORMS)}, got {norm!r}.")
    return NORMS[norm]


# ----------------------------------------------------------------------------------------------------------------
# What each style fixes (facts from transformers' modeling_{clip,siglip,aimv2}.py and apple/ml-aim aim-v1).
# Fields left as None / '' in the config take these values. `image_norm` is the pixel mean/std the released
# weights were trained with (`NORMS` above): CLIP's statistics for CLIP and AIMv2 (its
# preprocessor_config.json), [-1, 1] for SigLIP, ImageNet's for AIMv1 (apple/ml-aim aim-v1/aim/v1/torch/data.py).
# ----------------------------------------------------------------------------------------------------------------
STYLES: dict[str, dict[str, Any]] = {
    "clip": dict(class_token=True, patch_bias=False, patch_norm=None, pre_norm=True, norm="layer", attn_bias=True,
                 gated_mlp=False, activation="quick_gelu", mlp_bias=True, pos_embed="learned",
                 norm_in_last_hidden_state=False, head="class_token", image_norm="clip"),
    "siglip": dict(class_token=False, patch_bias=True, patch_norm=None, pre_norm=False, norm="layer", attn_bias=True,
                   gated_mlp=False, activation="gelu_tanh", mlp_bias=True, pos_embed="learned",
                   norm_in_last_hidden_state=True, head="map", image_norm="siglip"),
    "aim_v1": dict(class_token=False, patch_bias=True, patch_norm="layer", pre_norm=False, norm="layer",
                   attn_bias=False, gated_mlp=False, activation="gelu", mlp_bias=False, pos_embed="sincos",
                   norm_in_last_hidden_state=True, head=None, image_norm="imagenet"),
    "aim_v2": dict(class_token=False, patch_bias=True, patch_norm="rms", pre_norm=False, norm="rms", attn_bias=False,
                   gated_mlp=True, activation="silu", mlp_bias=False, pos_embed="learned",
                   norm_in_last_hidden_state=True, head="aim_v2", image_norm="clip"),
}
POS_EMBED_KINDS = ("learned", "sincos")


def style_value(cfg: Any, field: str) -> Any:
    """The config's value for an overridable field, or the style's default when it is None / ''."""
    value = _get(cfg, field)
    return STYLES[_get(cfg, "style")][field] if value is None or value == "" else value


def _get(cfg: Any, field: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping) or hasattr(cfg, "get") and not isinstance(cfg, nn.Module):
        return cfg.get(field, default)
    return getattr(cfg, field, default)


def grid_size(image_size: int, patch_size: int) -> int:
    return image_size // patch_size


def validate_vit_config(cfg: Any) -> None:
    """Raise ValueError, in one sentence naming the field and its value, for an encoder config that cannot work."""
    style = _get(cfg, "style")
    if style not in STYLES:
        raise ValueError(f"encoder.style={style!r} is not one of {', '.join(map(repr, STYLES))}.")
    image_size, patch_size = _get(cfg, "image_size"), _get(cfg, "patch_size")
    if patch_size <= 0 or image_size < patch_size:
        raise ValueError(f"encoder.image_size={image_size} is smaller than encoder.patch_size={patch_size}.")
    # google/siglip-so400m-patch14-384 runs 384 px through 14 px patches: the patch convolution (here as in torch)
    # drops the 6 pixels past the last whole patch (a 27 x 27 grid). Such configs must say so explicitly.
    partial = _get(cfg, "allow_partial_patches", model_config.ENCODER["allow_partial_patches"])
    if image_size % patch_size and not partial:
        raise ValueError(
            f"encoder.image_size={image_size} is not a multiple of encoder.patch_size={patch_size} (set "
            f"encoder.allow_partial_patches=True to drop the {image_size % patch_size} border pixels, as "
            f"SigLIP-so400m/14 @384 does).")
    width, num_heads = _get(cfg, "width"), _get(cfg, "num_heads")
    if num_heads <= 0 or width % num_heads:
        raise ValueError(f"encoder.width={width} is not divisible by encoder.num_heads={num_heads}.")
    depth, feature_layer = _get(cfg, "depth"), _get(cfg, "feature_layer", model_config.ENCODER["feature_layer"])
    if not -(depth + 1) <= feature_layer <= depth:
        raise ValueError(
            f"encoder.feature_layer={feature_layer} is out of range for encoder.depth={depth} "
            f"(hidden states are numbered {-(depth + 1)}..{depth}, 0 being the embeddings).")
    pos_embed = style_value(cfg, "pos_embed")
    if pos_embed not in POS_EMBED_KINDS:
        raise ValueError(f"encoder.pos_embed={pos_embed!r} is not one of {', '.join(map(repr, POS_EMBED_KINDS))}.")
    if pos_embed == "sincos" and width % 4:
        raise ValueError(f"encoder.width={width} must be a multiple of 4 for sin-cos position embeddings.")
    activation = style_value(cfg, "activation")
    if activation not in layers.ACTIVATIONS:
        raise ValueError(
            f"encoder.activation={activation!r} is not one of {', '.join(map(repr, layers.ACTIVATIONS))}.")


# ----------------------------------------------------------------------------------------------------------------
# Position embeddings
# ----------------------------------------------------------------------------------------------------------------
def _pair(grid: int | Sequence[int]) -> tuple[int, int]:
    return (grid, grid) if isinstance(grid, (int, np.integer)) else (int(grid[0]), int(grid[1]))


def sincos_pos_embed(grid: int | Sequence[int], width: int) -> np.ndarray:
    """2D sin-cos table [h*w, width] laid out [sin(x) | cos(x) | sin(y) | cos(y)], x the column, rows outer.

    This is MAE's table as AIM v1 (apple/ml-aim SinCosPosEmbed) and AIMv2-native (transformers) use it: the half
    called "h" there holds the column coordinate. Frequencies 1 / 10000^(k / (width/4)), computed in float64.
    """
    h, w = _pair(grid)
    quarter = width // 4
    omega = 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    x = cols.reshape(-1, 1) * omega
    y = rows.reshape(-1, 1) * omega
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1).astype(np.float32)


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys cubic convolution weights [.., 4] of the taps at -1, 0, 1, 2 for fractional offsets t (torch's a)."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def bicubic_matrix(old: int, new: int) -> np.ndarray:
    """[new, old] matrix of torch's bicubic resize along one axis (align_corners=False, no antialias, edge clamp)."""
    scale = old / new
    src = (np.arange(new, dtype=np.float64) + 0.5) * scale - 0.5
    base = np.floor(src)
    weights = _cubic_weights(src - base)
    taps = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, old - 1)
    matrix = np.zeros((new, old), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(new), 4), taps.reshape(-1)), weights.reshape(-1))
    return matrix


def interpolate_pos_embed(pos_emb: Any, old_grid: int | Sequence[int], new_grid: int | Sequence[int],
                          has_class_token: bool) -> Any:
    """Resize a learned position table [N(+1), C] from one patch grid to another, the class-token row untouched.

    Bicubic as torch.nn.functional.interpolate(mode='bicubic', align_corners=False), which transformers'
    interpolate_pos_encoding uses; numpy in -> numpy out (checkpoint surgery), jax in -> jax out (inside a model).
    """
    (oh, ow), (nh, nw) = _pair(old_grid), _pair(new_grid)
    xp = np if isinstance(pos_emb, np.ndarray) else jnp
    if (oh, ow) == (nh, nw):
        return pos_emb
    prefix, patches = (pos_emb[:1], pos_emb[1:]) if has_class_token else (pos_emb[:0], pos_emb)
    if patches.shape[0] != oh * ow:
        raise ValueError(f"a position table of {patches.shape[0]} patch rows does not fit the {oh}x{ow} grid.")
    grid = patches.reshape(oh, ow, -1)
    rows, cols = bicubic_matrix(oh, nh), bicubic_matrix(ow, nw)
    if xp is np:
        out = np.einsum("ih,jw,hwc->ijc", rows, cols, grid.astype(np.float64)).astype(pos_emb.dtype)
    else:
        out = jnp.einsum("ih,jw,hwc->ijc", rows.astype(np.float32), cols.astype(np.float32),
                         grid.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST).astype(pos_emb.dtype)
    return xp.concatenate([prefix, out.reshape(nh * nw, -1)], axis=0)


# Parameters that depend on the resolution: [N(+1), C] position tables with one row per patch of the encoder's grid,
# by leaf name. Whenever parameters trained at one resolution meet a model at another, these (and only these) are
# resized bicubically: the stage restore (`runtime.checkpoint.restore_params`) and converted weights
# (`pretrained.init_from_checkpoints`) both ask `resolution_resize`.
RESOLUTION_PARAMS = (
    "pos_embed",  # the ViT's learned table; a class-token row leads it when the ViT has a `class_token`
    "pos_emb",  # the C-Abstractor's (connector) table, one row per encoder patch, no class-token row
)


def resolution_resize(path: str, saved: Sequence[int], wanted: Sequence[int],
                      keys: Any = ()) -> tuple[int, int, bool] | None:
    """(saved grid side, wanted grid side, class-token row) when the parameter at `path` ('encoder/pos_embed')
    depends on the resolution (`RESOLUTION_PARAMS`) and its shapes differ only in a square grid; None otherwise.
    `keys`: the tree's other parameter paths (a sibling `class_token` means the table leads with its row)."""
    parent, _, leaf = path.rpartition("/")
    if leaf not in RESOLUTION_PARAMS or len(saved) != 2 or len(wanted) != 2 or saved[1] != wanted[1]:
        return None
    class_row = leaf == "pos_embed" and (f"{parent}/class_token" if parent else "class_token") in set(keys)
    old, new = _square_side(saved[0] - class_row), _square_side(wanted[0] - class_row)
    return None if old is None or new is None else (old, new, class_row)


def _square_side(n: int) -> int | None:
    """s when n = s*s (s >= 1), else None."""
    s = int(round(max(n, 0) ** 0.5))
    return s if s >= 1 and s * s == n else None


# ----------------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------------
class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). `scanned` gives nn.scan's signature."""

    width: int
    num_heads: int
    mlp_dim: int
    norm: str
    norm_eps: float
    attn_bias: bool
    gated_mlp: bool
    activation: str
    mlp_bias: bool
    dtype: Any = jnp.float32
    scanned: bool = False

    @nn.compact
    def __call__(self, x: Array, _: Any = None) -> Any:
        norm = lambda name: layers.make_norm(self.norm, self.norm_eps, "vit_embed", self.dtype, name)  # noqa: E731
        x = x + layers.Attention(
            num_heads=self.num_heads, num_kv_heads=self.num_heads, head_dim=self.width // self.num_heads,
            qkv_bias=self.attn_bias, out_bias=self.attn_bias, use_rope=False, causal=False, axes="vit",
            dtype=self.dtype, name="attn")(norm("norm1")(x))
        x = x + layers.Mlp(
            hidden_dim=self.mlp_dim, gated=self.gated_mlp, activation=self.activation, use_bias=self.mlp_bias,
            axes="vit", dtype=self.dtype, name="mlp")(norm("norm2")(x))
        x = layers.constrain(x, "act_batch", "act_len", "act_embed")
        return (x, x) if self.scanned else x


def _proj(features: Any, axis: Any, in_axes: tuple, out_axes: tuple, use_bias: bool, dtype: Any, name: str):
    """A projection with named kernel axes in_axes + out_axes and bias axes out_axes."""
    in_ndim = len(axis) if isinstance(axis, tuple) else 1
    return layers.Projection(features, (*in_axes, *out_axes), in_ndim=in_ndim, use_bias=use_bias, dtype=dtype,
                             name=name)


class ProbeAttention(nn.Module):
    """Multi-head attention of learned queries [B, Q, C] to tokens [B, N, C] (as torch nn.MultiheadAttention)."""

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, queries: Array, x: Array) -> Array:
        width = x.shape[-1]
        heads_axes = ("vit_heads", "head_dim")
        shape = (self.num_heads, width // self.num_heads)
        proj = lambda name: _proj(shape, -1, ("vit_embed",), heads_axes, True, self.dtype, name)  # noqa: E731
        out = layers.dot_product_attention(proj("q_proj")(queries), proj("k_proj")(x), proj("v_proj")(x), None)
        return _proj(width, (-2, -1), heads_axes, ("vit_embed",), True, self.dtype, "o_proj")(out)


class MapHead(nn.Module):
    """SigLIP's multihead attention pooling: a learned probe attends to the tokens, then a residual MLP."""

    num_heads: int
    mlp_dim: int
    norm_eps: float
    activation: str
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b, _, width = x.shape
        probe = self.param("probe", layers.with_axes(nn.initializers.xavier_uniform(), None, "vit_embed"),
                           (1, width), jnp.float32)
        queries = jnp.broadcast_to(probe.astype(x.dtype), (b, 1, width))
        out = ProbeAttention(self.num_heads, self.dtype, name="attn")(queries, x)
        hidden = layers.LayerNorm(self.norm_eps, axis_name="vit_embed", dtype=self.dtype, name="norm")(out)
        out = out + layers.Mlp(hidden_dim=self.mlp_dim, gated=False, activation=self.activation, use_bias=True,
                               axes="vit", dtype=self.dtype, name="mlp")(hidden)
        return out[:, 0]


class AimV2Head(nn.Module):
    """AIMv2's attention pooling: a learned query (no projection) attends to k/v projections, then a biased output."""

    num_heads: int
    attn_bias: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b, _, width = x.shape
        heads, head_dim = self.num_heads, width // self.num_heads
        query = self.param("query", layers.with_axes(nn.initializers.normal(0.02), "vit_embed"), (width,), jnp.float32)
        kv = lambda name: _proj((heads, head_dim), -1, ("vit_embed",), ("vit_heads", "head_dim"),  # noqa: E731
                                self.attn_bias, self.dtype, name)
        q = jnp.broadcast_to(query.astype(x.dtype).reshape(1, 1, heads, head_dim), (b, 1, heads, head_dim))
        out = layers.dot_product_attention(q, kv("k_proj")(x), kv("v_proj")(x), None)
        out = _proj(width, (-2, -1), ("vit_heads", "head_dim"), ("vit_embed",), True, self.dtype, "o_proj")(out)
        return out[:, 0]


# ----------------------------------------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------------------------------------
class ViT(nn.Module):
    """CLIP / SigLIP / AIM v1 / AIMv2 vision transformer; the fields are the encoder config's fields."""

    style: str = "clip"
    image_size: int = 224
    patch_size: int = 14
    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_dim: int = 4096
    norm_eps: float = 1e-5
    feature_layer: int = -1
    feature_norm: bool = False
    drop_class_token: bool = True
    allow_partial_patches: bool = False  # image_size need not be a multiple of patch_size (border pixels dropped)
    use_head: bool = False
    activation: str = ""  # '' = the style's
    pos_embed: str = ""  # '' = the style's; 'sincos' with style 'aim_v2' is AIMv2-native
    attn_bias: bool | None = None  # None = the style's
    mlp_bias: bool | None = None  # None = the style's
    dtype: Any = jnp.float32
    remat: bool = False
    scan: bool = False

    def _style(self, field: str) -> Any:
        return style_value(self, field)

    def _norm(self, kind: str, name: str) -> nn.Module:
        return layers.make_norm(kind, self.norm_eps, "vit_embed", self.dtype, name)

    def _embed(self, images: Array) -> Array:
        """Patches -> (norm) -> (+ class token) -> + position embedding -> (CLIP pre-norm): hidden_states[0]."""
        s = STYLES[self.style]
        patches = nn.Conv(
            self.width, (self.patch_size, self.patch_size), strides=(self.patch_size, self.patch_size),
            padding="VALID", use_bias=s["patch_bias"], dtype=self.dtype, name="patch_embed",
            kernel_init=layers.with_axes(nn.initializers.lecun_normal(), None, None, None, "vit_embed"),
            bias_init=layers.with_axes(nn.initializers.zeros, "vit_embed"))(images.astype(self.dtype))
        b, gh, gw, _ = patches.shape
        x = patches.reshape(b, gh * gw, self.width)
        if s["patch_norm"]:
            x = self._norm(s["patch_norm"], "patch_norm")(x)
        if s["class_token"]:
            token = self.param("class_token", layers.with_axes(nn.initializers.normal(0.02), "vit_embed"),
                               (self.width,), jnp.float32)
            x = jnp.concatenate([jnp.broadcast_to(token.astype(x.dtype), (b, 1, self.width)), x], axis=1)
        x = x + self._position_embedding(gh, gw).astype(x.dtype)[None]
        if s["pre_norm"]:
            x = self._norm(s["norm"], "pre_norm")(x)
        return layers.constrain(x, "act_batch", "act_len", "act_embed")

    def _position_embedding(self, gh: int, gw: int) -> Array:
        """The [N(+1), C] table for a gh x gw grid: sin-cos computed for it, or the learned one interpolated."""
        has_class_token = STYLES[self.style]["class_token"]
        if self._style("pos_embed") == "sincos":
            table = sincos_pos_embed((gh, gw), self.width)
            if has_class_token:
                table = np.concatenate([np.zeros((1, self.width), np.float32), table])
            return jnp.asarray(table)
        grid = grid_size(self.image_size, self.patch_size)
        table = self.param("pos_embed", layers.with_axes(nn.initializers.normal(0.02), None, "vit_embed"),
                           (grid * grid + has_class_token, self.width), jnp.float32)
        return interpolate_pos_embed(table, grid, (gh, gw), has_class_token)

    def _layers(self, x: Array) -> list[Array]:
        """[hidden_states[1], ..., hidden_states[depth]]: the output of every layer."""
        s = STYLES[self.style]
        block_args = dict(
            width=self.width, num_heads=self.num_heads, mlp_dim=self.mlp_dim, norm=s["norm"], norm_eps=self.norm_eps,
            attn_bias=self._style("attn_bias"), gated_mlp=s["gated_mlp"], activation=self._style("activation"),
            mlp_bias=self._style("mlp_bias"), dtype=self.dtype)
        block = nn.remat(Block) if self.remat else Block
        if self.scan:
            stack = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True}, length=self.depth,
                            metadata_params={nn.PARTITION_NAME: None})
            _, outputs = stack(**block_args, scanned=True, name="layers")(x, None)
            return [outputs[i] for i in range(self.depth)]
        outputs = []
        for i in range(self.depth):
            x = block(**block_args, name=f"layer_{i}")(x)
            outputs.append(x)
        return outputs

    @nn.compact
    def __call__(self, images: Array, *, return_hidden_states: bool = False) -> dict[str, Any]:
        """images [B, H, W, 3], normalised -> dict (module docstring); pixels past the last whole patch are unused."""
        validate_vit_config(self)
        if images.ndim != 4 or images.shape[-1] != 3 or min(images.shape[1:3]) < self.patch_size:
            raise ValueError(f"images of shape {tuple(images.shape)} are not [B, H, W, 3] with H, W >= "
                             f"encoder.patch_size={self.patch_size}.")
        s = STYLES[self.style]
        hidden_states = [self._embed(images)]
        hidden_states += self._layers(hidden_states[0])
        post_norm = self._norm(s["norm"], "post_norm")
        last = hidden_states[-1]
        normed_last = post_norm(last)
        out = {"last_hidden_state": normed_last if s["norm_in_last_hidden_state"] else last}

        features = hidden_states[self.feature_layer]
        if self.feature_norm:
            features = normed_last if self.feature_layer in (-1, self.depth) else post_norm(features)
        if s["class_token"] and self.drop_class_token:
            features = features[:, 1:]
        out["features"] = features

        if s["head"] == "class_token":
            out["pooled"] = normed_last[:, 0]
        elif s["head"] == "map" and self.use_head:
            out["pooled"] = MapHead(self.num_heads, self.mlp_dim, self.norm_eps, self._style("activation"),
                                    self.dtype, name="head")(normed_last)
        elif s["head"] == "aim_v2" and self.use_head:
            out["pooled"] = AimV2Head(self.num_heads, self._style("attn_bias"), self.dtype, name="head")(normed_last)
        if return_hidden_states:
            out["hidden_states"] = tuple(hidden_states)
        return out


# ----------------------------------------------------------------------------------------------------------------
# Presets: the papers' encoders and the feature choices their connectors read
# ----------------------------------------------------------------------------------------------------------------
# MM1 (McKinney et al. 2024, sec. 3.2 / appendix): the connector reads the last layer's patch tokens, before the final
# norm, class token dropped.
MM1_FEATURES = dict(feature_layer=-1, feature_norm=False, drop_class_token=True)
# mPLUG-Owl3 (Ye et al. 2024): SigLIP-400M's second-to-last layer, without the final norm (LLaVA-style; from the
# project brief, not yet checked against the released modeling_mplugowl3.py).
OWL3_FEATURES = dict(feature_layer=-2, feature_norm=False, drop_class_token=True)

# The fields that are not the architecture's size (the owner's defaults, models/config.py); '' / None take the
# style's value (see STYLES).
FIELD_DEFAULTS = {k: v for k, v in model_config.ENCODER.items() if k not in MM1_FEATURES}
OVERRIDABLE = ("activation", "pos_embed", "attn_bias", "mlp_bias")


def with_style_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """A copy of an encoder config dict whose None / '' fields hold the style's values (explicit, overridable)."""
    return {**cfg, **{field: style_value(cfg, field) for field in OVERRIDABLE}}


def _preset(**fields: Any) -> dict[str, Any]:
    return with_style_defaults({**FIELD_DEFAULTS, **fields})


VIT_PRESETS: dict[str, dict[str, Any]] = {
    # openai/clip-vit-large-patch14(-336) config.json: 1024 wide, 24 layers, 16 heads, 4096 MLP, quick-GELU.
    "clip_vit_l14_224": _preset(style="clip", image_size=224, patch_size=14, width=1024, depth=24,
                                num_heads=16, mlp_dim=4096, norm_eps=1e-5, **MM1_FEATURES),
    "clip_vit_l14_336": _preset(style="clip", image_size=336, patch_size=14, width=1024, depth=24,
                                num_heads=16, mlp_dim=4096, norm_eps=1e-5, **MM1_FEATURES),
    # ViT-H/14 (open_clip ViT-H-14; apple/DFN5B-CLIP-ViT-H-14-378 used by MM1): 1280 wide, 32 layers, 16 heads,
    # 5120 MLP; open_clip trains it with exact GELU (laion/CLIP-ViT-H-14-laion2B-s32B-b79K: hidden_act 'gelu').
    "clip_vit_h14_336": _preset(style="clip", image_size=336, patch_size=14, width=1280, depth=32,
                                num_heads=16, mlp_dim=5120, norm_eps=1e-5, **MM1_FEATURES, activation="gelu"),
    "clip_vit_h14_378": _preset(style="clip", image_size=378, patch_size=14, width=1280, depth=32,
                                num_heads=16, mlp_dim=5120, norm_eps=1e-5, **MM1_FEATURES, activation="gelu"),
    # google/siglip-so400m-patch14-384 config.json: 1152 wide, 27 layers, 16 heads, 4304 MLP, eps 1e-6.
    "siglip_so400m14_384": _preset(style="siglip", image_size=384, patch_size=14, width=1152, depth=27,
                                   num_heads=16, mlp_dim=4304, norm_eps=1e-6, **OWL3_FEATURES,
                                   allow_partial_patches=True),
    # apple/ml-aim aim-v1/aim/v1/torch/models.py: aim_600M / aim_1B / aim_3B, patch 14, 24 blocks, mlp_ratio 4;
    # 1536 / 2048 / 3072 wide with 12 / 16 / 24 heads (MM1's encoder ablation, arXiv 2403.09611, uses all three).
    "aim_600m_224": _preset(style="aim_v1", image_size=224, patch_size=14, width=1536, depth=24,
                            num_heads=12, mlp_dim=6144, norm_eps=1e-6, **MM1_FEATURES),
    "aim_1b_224": _preset(style="aim_v1", image_size=224, patch_size=14, width=2048, depth=24,
                          num_heads=16, mlp_dim=8192, norm_eps=1e-6, **MM1_FEATURES),
    "aim_3b_224": _preset(style="aim_v1", image_size=224, patch_size=14, width=3072, depth=24,
                          num_heads=24, mlp_dim=12288, norm_eps=1e-6, **MM1_FEATURES),
}
for _fields in VIT_PRESETS.values():
    validate_vit_config(_fields)
