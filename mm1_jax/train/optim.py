"""Optimisers and learning-rate schedules: AdamW, Adafactor or plain SGD, warmup then cosine to a floor, MM1's LR law.

`config.train.optimizer` fields (see configs/tiny.py):
  name          adamw | adafactor (MM1 SFT and MM1.5 continual pre-training use Adafactor) | sgd (plain, no momentum:
                the update is -lr x the clipped gradient, which the tests read the gradient's scale from)
  lr_rule       fixed: peak LR = lr, weight decay = weight_decay
                mm1_law: peak LR eta(N) = exp(-0.4214 ln N - 0.5535), N = decoder parameters; weight decay 0.1 x eta
                (MM1, arXiv 2403.09611: the fitted learning-rate law)
  lr, weight_decay
  warmup_steps, final_lr_fraction (cosine ends at peak x fraction), b1, b2, eps, clip_norm (0 = none)
Parameters and optimizer state stay float32 whatever the compute dtype.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import optax

OPTIMIZERS = ("adamw", "adafactor", "sgd")


def mm1_peak_lr(num_params: float) -> float:
    """MM1's learning-rate law (arXiv 2403.09611): peak LR from the decoder's parameter count."""
    return math.exp(-0.4214 * math.log(num_params) - 0.5535)


def resolve_lr(opt: ml_collections.ConfigDict, decoder_params: int) -> tuple[float, float]:
    """(peak LR, weight decay): the config's numbers, or MM1's law from the decoder's parameter count."""
    if opt.lr_rule == "mm1_law":
        lr = mm1_peak_lr(decoder_params)
        return lr, 0.1 * lr
    if opt.lr_rule != "fixed":
        raise ValueError(f"train.optimizer.lr_rule={opt.lr_rule!r} is not one of fixed, mm1_law.")
    if opt.lr <= 0 or opt.weight_decay < 0:
        raise ValueError(f"train.optimizer.lr={opt.lr!r} must be positive and weight_decay={opt.weight_decay!r} >= 0.")
    return float(opt.lr), float(opt.weight_decay)


def make_schedule(peak: float, total_steps: int, warmup_steps: int, final_fraction: float) -> optax.Schedule:
    """Linear warmup from 0 to `peak`, then cosine down to `peak * final_fraction` at `total_steps`."""
    if warmup_steps < 0:
        raise ValueError(f"train.optimizer.warmup_steps={warmup_steps} must not be negative.")
    warmup_steps = min(warmup_steps, total_steps)  # a run shorter than its warmup warms up over the whole run
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=peak, warmup_steps=warmup_steps, decay_steps=max(total_steps, warmup_steps + 1),
        end_value=peak * final_fraction,
    )


def _decay_mask(params: Any) -> Any:
    """Weight decay on matrices only (not on norms' scales and biases), as Llama-style recipes do."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(opt: ml_collections.ConfigDict, total_steps: int, decoder_params: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax chain for `config.train.optimizer` and its schedule (for logging the LR)."""
    if opt.name not in OPTIMIZERS:
        raise ValueError(f"train.optimizer.name={opt.name!r} is not one of {', '.join(OPTIMIZERS)}.")
    peak, wd = resolve_lr(opt, decoder_params)
    schedule = make_schedule(peak, total_steps, opt.warmup_steps, opt.final_lr_fraction)
    parts = [optax.clip_by_global_norm(opt.clip_norm)] if opt.clip_norm else []
    if opt.name == "adamw":
        parts.append(optax.adamw(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps, weight_decay=wd, mask=_decay_mask))
    elif opt.name == "sgd":  # plain gradient descent; weight decay on matrices, scaled by the LR as in optax.adamw
        if wd:
            parts.append(optax.add_decayed_weights(wd, mask=_decay_mask))
        parts.append(optax.sgd(schedule))
    else:  # Adafactor: factored second moments, no first moment (memory ~ parameters), as in MM1's SFT.
        parts.append(optax.adafactor(schedule, multiply_by_parameter_scale=False, clipping_threshold=None,
                                     weight_decay_rate=wd or None, weight_decay_mask=_decay_mask))
    return optax.chain(*parts), schedule


def count_params(tree: Any) -> int:
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))

