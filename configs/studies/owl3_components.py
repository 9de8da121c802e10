"""mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.4, Table 10: the hyper attention block's parts added one at a time —
plain parallel cross-attention, + the gate, + the shared input LayerNorm, + MI-Rope (the full block).

Set-up as Table 8 (configs/studies/_common.py: OWL3_*), hyper layers [1, 9, 17, 25]. Only the full block exists
today; the others need switches in `mm1_jax.models.hyper_attention`.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="hyper attention components: gate, shared LayerNorm, MI-Rope",
    paper="mPLUG-Owl3 (arXiv 2408.04840v2)", source="Table 10",
    fixed="LLaVA-1.5 recipe and data, Qwen1.5-7B, hyper layers [1, 9, 17, 25]",
)
STAGES = bm.OWL3_STAGES
HYPER = {**bm.QWEN15_7B, "model.decoder.hyper_layers": (1, 9, 17, 25)}
_TRAIN = {"pretrain": {"train.trainable": bm.OWL3_STAGE1_HYPER}}
WITHOUT = "a decoder switch to build hyper attention without {} (model.decoder has none)"
ROWS = {
    "none": dict(arg=bm.OWL3_ARG, overrides=HYPER, stage_overrides=_TRAIN,
                 missing=WITHOUT.format("the gate, the shared input LayerNorm and MI-Rope")),
    "gate": dict(arg=bm.OWL3_ARG, overrides=HYPER, stage_overrides=_TRAIN,
                 missing=WITHOUT.format("the shared input LayerNorm and MI-Rope")),
    "gate_shared_ln": dict(arg=bm.OWL3_ARG, overrides=HYPER, stage_overrides=_TRAIN,
                           missing=WITHOUT.format("MI-Rope")),
    "gate_shared_ln_mi_rope": dict(arg=bm.OWL3_ARG, overrides=HYPER, stage_overrides=_TRAIN),
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
