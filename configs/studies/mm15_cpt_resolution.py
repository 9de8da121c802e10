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

# Embedded scale: pre-training shared, continual pre-training on the world's text-rich pages (ocr_pages: 256-512 px,
# illegible at the encoder's 64 px) at the base resolution, 2x (2x2 crops of 64 px + an overview) or 4x (3x3 crops
# and an overview; 4x4 would need 17 entries per image), then the same SFT mixture; MMBase's three categories by
# their embedded tasks.
_SPLIT = {"data.max_images": 10, "model.max_images": 10, "data.split.kinds": ("caption", "sft")}
_TINY_SFT = {**bm.TINY_TRAIN, **_SPLIT, "data.weights": bm.TINY_SFT, "data.split.mode": "mm1.5",
             "data.split.n_min": 4, "data.split.n_max": 4}
EMBEDDED = dict(
    stages=(
        dict(name="pretrain", config="configs/tiny.py", shared=True,
             overrides={**bm.TINY_TRAIN, **_SPLIT, "data.weights": bm.TINY_PRETRAIN}),
        dict(name="cpt", config="configs/tiny.py", overrides={**bm.TINY_TRAIN, **_SPLIT, "data.weights": bm.TINY_CPT}),
        dict(name="sft", config="configs/tiny.py", overrides=_TINY_SFT),
        dict(name="eval", evaluate=True, shots=(0,), limit=100),
    ),
    rows={
        "no_cpt": dict(arg="main", skip=("cpt",)),
        "cpt_378": dict(arg="main", stage_overrides={"cpt": {"data.split.mode": "none"}}),
        "cpt_756": dict(arg="main", stage_overrides={"cpt": {"data.split.mode": "mm1.5", "data.split.n_min": 4,
                                                             "data.split.n_max": 4}}),
        "cpt_1344": dict(arg="main", stage_overrides={"cpt": {"data.split.mode": "mm1.5", "data.split.n_min": 9,
                                                              "data.split.n_max": 9}}),
    },
    benchmarks=dict(bm.TINY_MMBASE),
    metrics={"MMBase": dict(mean=("General", "Text-rich", "Knowledge"), shots=0),
             "Text-rich": dict(mean=("Text-rich",), shots=0)},
)
FIGURES = (dict(kind="line", metric="MMBase", x={"no_cpt": 0, "cpt_378": 1, "cpt_756": 2, "cpt_1344": 4},
                xlabel="continual pre-training resolution (x the encoder's; 0 = none)",
                title="MM1.5 Fig. 9a: MMBase by continual pre-training resolution", file="fig9a.png"),)
