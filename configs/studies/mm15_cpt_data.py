"""MM1.5 (arXiv 2409.20566) Sec. 3, Fig. 9b: continual pre-training data at 1344 px — OCR data, public synthetic
captions (LLaVA-Recap-3M, ShareGPT4V-PT) and their mixtures with OCR; scored by MMBase after SFT.

The OCR+caption mixing ratios were not found (1:1 here). All numbers are from a single secondary source.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="continual pre-training data: OCR vs public synthetic captions",
    paper="MM1.5 (arXiv 2409.20566)", source="Fig. 9b",
    fixed="3B decoder; CPT at 1344 px (4 x 672 px + overview); SFT with static splitting",
)
STAGES = bm.shared(bm.MM15_ABLATION_STAGES, "pretrain")


def _cpt(weights="", **extra):
    return dict(arg="decoder=3b", stage_overrides={"cpt": {"data.weights": weights}} if weights else {}, **extra)


ROWS = {
    "ocr": _cpt(),
    "llava_recap": _cpt("ocr:0,llava_recap:1"),
    "sharegpt4v": _cpt("ocr:0,sharegpt4v_pt:1"),
    "ocr_llava_recap": _cpt("ocr:1,llava_recap:1"),
    "ocr_sharegpt4v": _cpt("ocr:1,sharegpt4v_pt:1"),
}
BENCHMARKS = dict(bm.MM15)
METRICS = dict(bm.MM15_METRICS)
PAPER = {
    "ocr": {"MMBase": (60.26, "Fig. 9b", "[S1]")},
    "llava_recap": {"MMBase": (59.48, "Fig. 9b", "[S1]")},
    "sharegpt4v": {"MMBase": (59.00, "Fig. 9b", "[S1]")},
    "ocr_llava_recap": {"MMBase": (59.77, "Fig. 9b", "[S1]")},
    "ocr_sharegpt4v": {"MMBase": (59.51, "Fig. 9b", "[S1]")},
}
FINDINGS = (
    ("public synthetic captions do not help continual pre-training beyond OCR data", "Fig. 9b", "[S]"),
    ("7M in-house captions (a 3B captioner) help and scale with data; not used in the final recipe", "App. A.1", "[S]"),
)
