"""C-Abstractor (HoneyBee, used by MM1): convolutional connector from patch features to K visual tokens.

Steps, for encoder patch features x [B, N, Cv] with N = s*s:
  x + pos_emb [N, Cv] -> s x s map -> RegNet stage (`depth` bottleneck blocks, Cv -> C)
  -> adaptive average pool to k x k (PyTorch windows) -> RegNet stage (`depth` blocks, C -> C)
  -> flatten to [B, k*k, C] -> readout MLP: Linear(C, D), then (SiLU, Linear(D, D)) x (mlp_depth - 1).
With depth 0 there are no RegNet stages and the readout reads Cv channels (as in HoneyBee).

One bottleneck block (timm `RegStage`/`Bottleneck` with bottleneck ratio 1 and group width 1, SiLU, LayerNorm2d):
  conv1: 1x1 conv (no bias) -> LayerNorm over channels (eps 1e-5) -> SiLU
  conv2: depthwise 3x3 conv (pad 1, no bias) -> LayerNorm -> SiLU
  se:    mean over H, W -> fc1 (1x1 conv, bias, round(0.25 * block input channels) wide) -> SiLU
         -> fc2 (1x1 conv, bias) -> sigmoid -> multiply
  conv3: 1x1 conv (no bias) -> LayerNorm (no activation)
  shortcut: identity, or `downsample` (1x1 conv, no bias -> LayerNorm) when the channel count changes
  out = SiLU(conv3 + shortcut)
The norms are timm's LayerNormAct2d (eps 1e-5), which `ConvNormAct` builds from HoneyBee's LayerNorm2d.

Parameter names mirror HoneyBee's checkpoint one-to-one (`mm1_jax.convert.honeybee` does the mapping):

  HoneyBee (torch, prefix `abstractor.`)          ours (flax params)                     transform
  pos_emb                 [1, N, Cv]              pos_emb                 [N, Cv]         drop the leading 1
  net.0.b1.conv1.conv.weight  [C, Cv, 1, 1]       net_0/b1/conv1/conv/kernel [1,1,Cv,C]   transpose (2, 3, 1, 0)
  net.0.b1.conv1.bn.weight / .bias                net_0/b1/conv1/norm/scale / bias        as is
  net.0.b1.conv2.conv.weight  [C, 1, 3, 3]        net_0/b1/conv2/conv/kernel [3,3,1,C]    transpose (2, 3, 1, 0)
  net.0.b1.conv3.{conv,bn}.*                      net_0/b1/conv3/{conv,norm}/*            as conv1
  net.0.b1.se.fc1.weight  [R, C, 1, 1], .bias     net_0/b1/se/fc1/kernel [1,1,C,R], bias  transpose (2, 3, 1, 0)
  net.0.b1.se.fc2.weight  [C, R, 1, 1], .bias     net_0/b1/se/fc2/kernel [1,1,R,C], bias  transpose (2, 3, 1, 0)
  net.0.b1.downsample.{conv,bn}.*                 net_0/b1/downsample/{conv,norm}/*       as conv1
  net.2.b{i}.*            (second stage)          net_2/b{i}/*                            same rules
  readout.{j}.weight [out, in], .bias  (j=0,2,..)  readout_{j}/kernel [in, out], bias     transpose
Blocks are numbered from 1 (b1 .. b{depth}) because timm's RegStage numbers them so; `net_1` is the parameter-free
pooling, as `net.1` is in HoneyBee's nn.Sequential.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "normal")
POS_EMB_INIT = nn.initializers.truncated_normal(stddev=0.02)
LAYER_NORM_EPS = 1e-5


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] averaging matrix with torch.nn.AdaptiveAvgPool's windows.

    Output cell i averages input rows floor(i*n/k) .. ceil((i+1)*n/k) - 1; windows may overlap (27 -> 12).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"adaptive pooling needs positive sizes, got in_size={in_size}, out_size={out_size}.")
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil((i+1)*n/k)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def square_sides(num_input: int, num_tokens: int, who: str) -> tuple[int, int]:
    """(s, k): the input is an s x s token map and the output k x k; ValueError naming `who` when either is not."""
    side, out_side = int(round(num_input**0.5)), int(round(num_tokens**0.5))
    if side * side != num_input or out_side * out_side != num_tokens:
        raise ValueError(f"{who} needs square token counts, got N={num_input} input and K={num_tokens} output tokens.")
    return side, out_side


def adaptive_avg_pool_2d(x: jax.Array, out_hw: int | Sequence[int]) -> jax.Array:
    """2D adaptive average pooling of channels-last maps [B, H, W, C] -> [B, kh, kw, C], PyTorch-exact windows."""
    out_h, out_w = (out_hw, out_hw) if isinstance(out_hw, int) else tuple(out_hw)
    _, height, width, _ = x.shape
    rows = jnp.asarray(adaptive_pool_matrix(height, out_h), dtype=x.dtype)
    cols = jnp.asarray(adaptive_pool_matrix(width, out_w), dtype=x.dtype)
    # The averaging weights are exact reciprocals; HIGHEST keeps float32 inputs from being rounded on TPU.
    precision = jax.lax.Precision.HIGHEST
    x = jnp.einsum("ih,bhwc->biwc", rows, x, precision=precision)
    return jnp.einsum("jw,biwc->bijc", cols, x, precision=precision)


def _conv(features: int, kernel: int, name: str, dtype: Dtype, groups: int = 1, use_bias: bool = False) -> nn.Conv:
    """A stride-1 conv with 'same' padding and logically named kernel/bias (spatial kernel dims unnamed)."""
    in_axis = None if groups > 1 else "conv_in"
    pad = kernel // 2
    return nn.Conv(
        features,
        (kernel, kernel),
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=nn.with_logical_partitioning(CONV_INIT, (None, None, in_axis, "conv_out")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
        name=name,
    )


def _channel_norm(name: str, dtype: Dtype) -> nn.LayerNorm:
    """LayerNorm over the channel axis of a channels-last map: timm's LayerNorm2d / LayerNormAct2d."""
    return nn.LayerNorm(
        epsilon=LAYER_NORM_EPS,
        dtype=dtype,
        use_fast_variance=False,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("conv_out",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
        name=name,
    )


class ConvNorm(nn.Module):
    """Conv (no bias) then channel LayerNorm, optionally SiLU: timm's ConvNormAct, params `conv` and `norm`."""

    features: int
    kernel: int = 1
    groups: int = 1
    activate: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = _conv(self.features, self.kernel, "conv", self.dtype, groups=self.groups)(x)
        x = _channel_norm("norm", self.dtype)(x)
        return nn.silu(x) if self.activate else x


class SqueezeExcite(nn.Module):
    """Squeeze-excite: channel gates sigmoid(fc2(SiLU(fc1(mean over H, W)))) multiply the map."""

    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        gate = jnp.mean(x, axis=(1, 2), keepdims=True)
        gate = nn.silu(_conv(self.hidden, 1, "fc1", self.dtype, use_bias=True)(gate))
        gate = nn.sigmoid(_conv(channels, 1, "fc2", self.dtype, use_bias=True)(gate))
        return x * gate


class RegNetBottleneck(nn.Module):
    """RegNet-Y bottleneck block (ratio 1, depthwise 3x3, squeeze-excite 0.25 of the input width), channels-last."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_channels = x.shape[-1]
        shortcut = x
        y = ConvNorm(self.features, 1, dtype=self.dtype, name="conv1")(x)
        y = ConvNorm(self.features, 3, groups=self.features, dtype=self.dtype, name="conv2")(y)
        y = SqueezeExcite(int(round(0.25 * in_channels)), dtype=self.dtype, name="se")(y)
        y = ConvNorm(self.features, 1, activate=False, dtype=self.dtype, name="conv3")(y)
        if in_channels != self.features:
            shortcut = ConvNorm(self.features, 1, activate=False, dtype=self.dtype, name="downsample")(x)
        return nn.silu(y + shortcut)


class RegNetStage(nn.Module):
    """`depth` bottleneck blocks named b1..b{depth}; the first one changes the width to `features`."""

    depth: int
    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(1, self.depth + 1):
            x = RegNetBottleneck(self.features, dtype=self.dtype, name=f"b{i}")(x)
        return x


class CAbstractor(nn.Module):
    """HoneyBee's C-Abstractor: patch features [B, N, Cv] (N = s*s) -> [B, K, out_dim] (K = k*k).

    Fields: num_tokens K (a perfect square), hidden_dim C (RegNet width), out_dim D (decoder width),
    depth (blocks per RegNet stage, HoneyBee default 3), mlp_depth (readout layers, default 2),
    use_pos_emb (learned [N, Cv] position embedding added first), dtype (compute dtype; params float32).
    """

    num_tokens: int
    hidden_dim: int
    out_dim: int
    depth: int = 3
    mlp_depth: int = 2
    use_pos_emb: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, num_input, in_dim = x.shape
        side, out_side = square_sides(num_input, self.num_tokens, "CAbstractor")
        x = x.astype(self.dtype)
        if self.use_pos_emb:
            pos_emb = self.param(
                "pos_emb", nn.with_logical_partitioning(POS_EMB_INIT, (None, "vit_embed")), (num_input, in_dim)
            )
            x = x + pos_emb.astype(self.dtype)[None]
        x = x.reshape(batch, side, side, in_dim)
        if self.depth > 0:
            x = RegNetStage(self.depth, self.hidden_dim, dtype=self.dtype, name="net_0")(x)
        x = adaptive_avg_pool_2d(x, out_side)
        if self.depth > 0:
            x = RegNetStage(self.depth, self.hidden_dim, dtype=self.dtype, name="net_2")(x)
        x = x.reshape(batch, self.num_tokens, x.shape[-1])
        for j in range(self.mlp_depth):
            if j > 0:
                x = nn.silu(x)
            in_axis = "conv_out" if j == 0 else "mlp"
            x = nn.Dense(
                self.out_dim,
                dtype=self.dtype,
                kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), (in_axis, "embed")),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
                name=f"readout_{2 * j}",
            )(x)
        return nn.with_logical_constraint(x, ("act_batch", None, "act_embed"))
