"""Print a model config's parameter counts per component, image tokens per image and sequence budget.

    python -m mm1_jax.models.summary --config=configs/mm1_pretrain.py:decoder=7b

Counts come from `jax.eval_shape` of the initialiser: nothing is allocated, so 30B models summarise on a laptop.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import ml_collections

from mm1_jax.models import config as model_config
from mm1_jax.models import registry
from mm1_jax.models.inputs import init_inputs, input_spec


def abstract_params(model_cfg: ml_collections.ConfigDict) -> dict:
    """Parameter shapes (ShapeDtypeStructs) of the whole model, from `jax.eval_shape`."""
    model = registry.build_model(model_cfg)
    example = init_inputs(model_cfg)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), **example))
    return nn.unbox(variables["params"])


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def part_counts(params: dict) -> dict[str, int]:
    """Parameters of the encoder, the connector (an Owl3's: its vision2text projector) and the decoder."""
    connector = params.get("connector", params.get("vision2text", {}))
    return {"encoder": count(params.get("encoder", {})), "connector": count(connector),
            "decoder": count(params.get("decoder", {}))}


def summarize(config: ml_collections.ConfigDict) -> dict:
    """The figures the command prints, as a dict (also used by tests and notebooks)."""
    params = abstract_params(config.model)
    parts = part_counts(params)
    dec = config.model.decoder
    get = lambda field: model_config.get(dec, "decoder", field)  # noqa: E731
    embed = dec.vocab_size * dec.width * (1 if get("tie_embeddings") else 2)
    seq_len = config.get("data", {}).get("seq_len", 4096) if "data" in config else 4096
    video = (config.get("data") or {}).get("video") if "data" in config else None
    spec = input_spec(config.model)
    k, max_images = spec.tokens_per_image, spec.max_images
    inactive = 0
    if get("num_experts"):
        moe_layers = sum(1 for i in range(dec.depth) if (i + 1) % get("moe_every") == 0)
        per_expert = 3 * dec.width * (get("expert_mlp_dim") or dec.mlp_dim)
        inactive = moe_layers * (dec.num_experts - get("top_k")) * per_expert
    return dict(
        params=parts,
        total=sum(parts.values()),
        decoder_active=parts["decoder"] - inactive,
        decoder_non_embedding=parts["decoder"] - embed,
        tokens_per_image=k,
        encoder_tokens=registry.num_encoder_tokens(config.model.encoder),
        seq_len=seq_len,
        max_images=max_images,
        max_image_tokens=k * max_images,
        # data.video (mm1_jax.data.config): a video is `frames` whole images, never split
        video_frames=int(video.frames) if video else None,
        video_tokens=int(video.frames) * k if video else None,
    )


def format_summary(s: dict) -> str:
    def b(n):
        return f"{n / 1e9:8.3f}B" if n >= 1e8 else f"{n / 1e6:8.3f}M"

    lines = ["component        parameters"]
    lines += [f"  {name:<14} {b(n)}  ({n:,})" for name, n in s["params"].items()]
    lines += [
        f"  {'total':<14} {b(s['total'])}  ({s['total']:,})",
        f"  decoder without embeddings: {b(s['decoder_non_embedding'])}",
        f"  decoder active per token:   {b(s['decoder_active'])}",
        "",
        f"image tokens: {s['encoder_tokens']} encoder tokens -> {s['tokens_per_image']} decoder tokens per image",
        f"sequence budget: {s['seq_len']} tokens per row; up to {s['max_images']} images = "
        f"{s['max_image_tokens']} image tokens ({100 * s['max_image_tokens'] / s['seq_len']:.1f}%), "
        f"leaving at least {s['seq_len'] - s['max_image_tokens']} for text",
    ]
    if s.get("video_frames"):
        frames, tokens, seq_len = s["video_frames"], s["video_tokens"], s["seq_len"]
        fits = tokens < seq_len and frames <= s["max_images"]
        why = "" if fits else (f": {tokens} tokens do not fit data.seq_len={seq_len}" if tokens >= seq_len else
                               f": {frames} frames exceed max_images={s['max_images']} (video records are skipped)")
        verdict = f"a row still fits, leaving {seq_len - tokens} for text" if fits else "does NOT fit" + why
        lines.append(f"video: {frames} frames x {s['tokens_per_image']} tokens = {tokens} image tokens "
                     f"({100 * tokens / seq_len:.1f}% of {seq_len}), no splitting; {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    from mm1_jax import command_line  # pylint: disable=import-outside-toplevel
    from ml_collections import config_flags  # pylint: disable=import-outside-toplevel

    _CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/X.py[:ARG]).", lock_config=False)
    command_line.run(lambda argv: print(format_summary(summarize(_CONFIG.value))))
