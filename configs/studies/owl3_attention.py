"""mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.4, Table 8: how the language model reads the images — image tokens
concatenated into the sequence, a cross-attention block before or after self-attention (Flamingo-style), or the
hyper attention transformer block (cross-attention in parallel with self-attention, shared input LayerNorm, gate,
MI-Rope) in layers [1, 9, 17, 25].

Set-up [P]: the LLaVA-1.5 recipe and data with Qwen1.5-7B (configs/studies/_common.py: OWL3_*). Hyper attention is
`model.decoder.hyper_layers` (zero-based layer indices) with the connector 'mlp'. The cross-attention rows are
`model.decoder.cross_attention_layers` with `model.decoder.cross_attention_position` 'pre' or 'post': a Flamingo-style
gated cross-attention block (tanh gates initialised at 0, then a gated FFN; `mm1_jax.models.cross_attention`) before or
after those layers' self-attention. Both read the images the way hyper attention does (one placeholder token per
image, the projector's output read by the block, images seen from their placeholder on). The text we read does not
say which layers the cross-attention rows use: the hyper row's layers are assumed, so the rows differ only in the
block. Stage 1 trains the projector and, as the hyper row trains its new image K/V and gate, the new blocks (all
their parameters: Flamingo trains its cross-attention blocks from scratch with the language model frozen).
"""
from configs.studies import _common as bm

STUDY = dict(
    title="attention structure: concatenation, pre-/post-cross-attention, hyper attention",
    paper="mPLUG-Owl3 (arXiv 2408.04840v2)", source="Table 8",
    fixed="LLaVA-1.5 recipe and data, Qwen1.5-7B, SigLIP-400m (assumed), MLP projector",
)
STAGES = bm.OWL3_STAGES
LAYERS = (1, 9, 17, 25)  # the layers that read the images: period 8 over 32 layers, so scan works
HYPER = {**bm.QWEN15_7B, "model.decoder.hyper_layers": LAYERS}


def _cross(position: str) -> dict:
    return {**bm.QWEN15_7B, "model.decoder.cross_attention_layers": LAYERS,
            "model.decoder.cross_attention_position": position}


STAGE1_CROSS = ("connector", "decoder/*/cross/*")  # the projector and the new gated cross-attention blocks
ROWS = {
    "concatenate": dict(arg=bm.OWL3_ARG, overrides=bm.QWEN15_7B,
                        stage_overrides={"pretrain": {"train.trainable": bm.OWL3_STAGE1_CONNECTOR}}),
    "pre_cross": dict(arg=bm.OWL3_ARG, overrides=_cross("pre"),
                      stage_overrides={"pretrain": {"train.trainable": STAGE1_CROSS}}),
    "post_cross": dict(arg=bm.OWL3_ARG, overrides=_cross("post"),
                       stage_overrides={"pretrain": {"train.trainable": STAGE1_CROSS}}),
    "hyper": dict(arg=bm.OWL3_ARG, overrides=HYPER,
                  stage_overrides={"pretrain": {"train.trainable": bm.OWL3_STAGE1_HYPER}}),
}
BENCHMARKS = dict(bm.OWL3_ABLATION)
METRICS = dict(bm.OWL3_METRICS)


def _row(*values):
    return {m: (v, "Table 8", "[P]") for m, v in zip(METRICS, values, strict=True)}


PAPER = {
    "concatenate": _row(59.0, 51.6, 22.4, 25.1, 55.7, 38.7),
    "pre_cross": _row(53.8, 45.2, 43.0, 38.9, 55.3, 44.7),
    "post_cross": _row(48.9, 40.9, 38.3, 37.0, 54.0, 47.0),
    "hyper": _row(57.6, 50.0, 42.8, 39.4, 59.5, 51.6),
}
FINDINGS = (
    ("concatenation is best on single images but collapses on multi-image and video benchmarks", "Sec. 4.4", "[P]"),
)
