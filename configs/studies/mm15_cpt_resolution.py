"""MM1.5 (arXiv 2409.20566) Sec. 3, Fig. 9a: continual pre-training on OCR-rich data (PDFA, IDL, RenderedText,
DocStruct-4M, 45M samples) — none, or at 378 px, 756 px (2x2 crops of 378 px + overview) or 1344 px (2x2 crops of
672 px + overview); every row is then fine-tuned the same way and scored by MMBase (mean of the General, Text-rich
and Knowledge category averages).

One pre-training run is shared. All numbers are from secondary summaries.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="continual pre-training image resolution",
    paper="MM1.5 (arXiv 2409.20566)", source="Fig. 9a",
    fixed="3B decoder; OCR data; SFT with static splitting (4 x 672 px + overview)",
)
STAGES = bm.shared(bm.MM15_ABLATION_STAGES, "pretrain")
ROWS = {
    "no_cpt": dict(arg="decoder=3b", skip=("cpt",)),
    "cpt_378": dict(arg="decoder=3b", stage_overrides={"cpt": {"model.encoder.image_size": 378,
                                                               "data.split.mode": "none"}}),
    "cpt_756": dict(arg="decoder=3b", stage_overrides={"cpt": {"model.encoder.image_size": 378,
                                                               "data.split.mode": "mm1"}}),
    "cpt_1344": dict(arg="decoder=3b"),
}
BENCHMARKS = dict(bm.MM15)
METRICS = dict(bm.MM15_METRICS)
PAPER = {
    "no_cpt": {"MMBase": (58.80, "Fig. 9a", "[S1]")},
    "cpt_378": {"MMBase": (58.28, "Fig. 9a", "[S1]")},
    "cpt_756": {"MMBase": (59.41, "Fig. 9a", "[S1]")},
    "cpt_1344": {"MMBase": (60.26, "Fig. 9a", "[S1]")},
}
FINDINGS = (
    ("MMBase rises with the continual pre-training resolution (756 and 1344 px above no CPT); 378 px is below no CPT",
     "Fig. 9a", "[S]"),
)
