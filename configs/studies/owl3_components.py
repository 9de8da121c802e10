"""mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.4, Table 10: the hyper attention block's parts added one at a time —
plain parallel cross-attention, + the gate, + the shared input LayerNorm, + MI-Rope (the full block).

Set-up as Table 8 (configs/studies/_common.py: OWL3_*), hyper layers [1, 9, 17, 25]. The parts are the decoder
switches `model.decoder.hyper_gate`, `hyper_shared_norm`, `hyper_mi_rope` (`mm1_jax.models.hyper_attention`; all
True = the released block). Without the gate the two attention outputs are added (S + C: the paper's text does not
give the un-gated formula); without the shared LayerNorm the images get their own RMSNorm `image_norm`, a new
parameter that stage 1 trains with the visual K/V (our choice; the paper does not say); without MI-Rope the image
keys carry no rotary position.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="hyper attention components: gate, shared LayerNorm, MI-Rope",
    paper="mPLUG-Owl3 (arXiv 2408.04840v2)", source="Table 10",
    fixed="LLaVA-1.5 recipe and data, Qwen1.5-7B, hyper layers [1, 9, 17, 25]",
)
STAGES = bm.OWL3_STAGES
HYPER = {**bm.QWEN15_7B, "model.decoder.hyper_layers": (1, 9, 17, 25)}
NO_GATE = {"model.decoder.hyper_gate": False}
NO_SHARED_LN = {"model.decoder.hyper_shared_norm": False}
NO_MI_ROPE = {"model.decoder.hyper_mi_rope": False}
IMAGE_NORM = ("decoder/*/image_norm/*",)  # the images' own RMSNorm when the LayerNorm is not shared
STAGE1_NO_GATE = tuple(p for p in bm.OWL3_STAGE1_HYPER if "gate_proj" not in p)


def _train(trainable):
    return {"pretrain": {"train.trainable": tuple(trainable)}}


ROWS = {
    "none": dict(arg=bm.OWL3_ARG, overrides={**HYPER, **NO_GATE, **NO_SHARED_LN, **NO_MI_ROPE},
                 stage_overrides=_train(STAGE1_NO_GATE + IMAGE_NORM),
                 note="plain parallel cross-attention: S + C, images with their own RMSNorm, no rotary on image keys"),
    "gate": dict(arg=bm.OWL3_ARG, overrides={**HYPER, **NO_SHARED_LN, **NO_MI_ROPE},
                 stage_overrides=_train(bm.OWL3_STAGE1_HYPER + IMAGE_NORM)),
    "gate_shared_ln": dict(arg=bm.OWL3_ARG, overrides={**HYPER, **NO_MI_ROPE},
                           stage_overrides=_train(bm.OWL3_STAGE1_HYPER)),
    "gate_shared_ln_mi_rope": dict(arg=bm.OWL3_ARG, overrides=HYPER, stage_overrides=_train(bm.OWL3_STAGE1_HYPER)),
}
BENCHMARKS = dict(bm.OWL3_ABLATION)
METRICS = dict(bm.OWL3_METRICS)


def _row(*values):
    return {m: (v, "Table 10", "[P]") for m, v in zip(METRICS, values, strict=True)}


PAPER = {
    "none": _row(53.3, 44.6, 40.2, 38.1, 52.7, 41.9),
    "gate": _row(55.7, 49.3, 43.2, 40.1, 53.4, 47.9),
    "gate_shared_ln": _row(58.1, 49.7, 42.8, 38.4, 54.9, 46.1),
    "gate_shared_ln_mi_rope": _row(57.6, 50.0, 42.8, 39.4, 59.5, 51.6),
}
FINDINGS = (("MI-Rope drives the multi-image gains", "Sec. 4.4", "[P]"),)
