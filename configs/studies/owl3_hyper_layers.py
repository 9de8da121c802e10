"""mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.4, Table 9: which decoder layers become hyper attention transformer
blocks — 2 layers [9, 27], 8 layers [1, 5, ..., 29], or 4 layers [1, 9, 17, 25] (the table's indices; the text
says [0, 9, 17, 25] for the released models, `hyper_0_9_17_25` here, not a table row).

Set-up as Table 8 (configs/studies/_common.py: OWL3_*). Placements without a period dividing the depth cannot be
scanned (`model.decoder.scan_layers=False`).
"""
from configs.studies import _common as bm

STUDY = dict(
    title="hyper attention layer placement",
    paper="mPLUG-Owl3 (arXiv 2408.04840v2)", source="Table 9",
    fixed="LLaVA-1.5 recipe and data, Qwen1.5-7B, SigLIP-400m (assumed), MLP projector",
)
STAGES = bm.OWL3_STAGES


def _hyper(layers, scan=True, **extra):
    overrides = {**bm.QWEN15_7B, "model.decoder.hyper_layers": tuple(layers), "model.decoder.scan_layers": scan}
    return dict(arg=bm.OWL3_ARG, overrides=overrides,
                stage_overrides={"pretrain": {"train.trainable": bm.OWL3_STAGE1_HYPER}}, **extra)


ROWS = {
    "hyper_9_27": _hyper((9, 27), scan=False),
    "hyper_8_layers": _hyper(range(1, 32, 4)),
    "hyper_1_9_17_25": _hyper((1, 9, 17, 25)),
    "hyper_0_9_17_25": _hyper((0, 9, 17, 25), scan=False, note="the text's placement, not a Table 9 row"),
}
BENCHMARKS = dict(bm.OWL3_ABLATION)
METRICS = dict(bm.OWL3_METRICS)


def _row(*values):
    return {m: (v, "Table 9", "[P]") for m, v in zip(METRICS, values, strict=True)}


PAPER = {
    "hyper_9_27": _row(55.1, 51.3, 42.2, 38.2, 58.3, 48.4),
    "hyper_8_layers": _row(56.2, 48.3, 41.5, 39.5, 52.4, 47.5),
    "hyper_1_9_17_25": _row(57.6, 50.0, 42.8, 39.4, 59.5, 51.6),
    "hyper_0_9_17_25": {m: ("not published", "Table 9", "[P]") for m in METRICS},
}
FINDINGS = (("four hyper layers is the best placement", "Sec. 4.4", "[P]"),)
