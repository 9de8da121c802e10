"""MM1 (arXiv 2403.09611) Sec. 5, Fig. 7b: image resolution at SFT — position-embedding interpolation of the
encoder (378 -> 448, 560, 672 px) and image splitting (4 crops + an overview: 1344 px from 672 px crops, 720 image
tokens; 1792 px from 896 px crops).

One pre-training run (final recipe, 3B decoder) is shared; each row fine-tunes it at its resolution
(configs/mm1_sft.py: 672 px crops of a 1344 px image), then is scored on the SFT benchmarks, images split as in
training.

Fig. 7c (more pre-training steps give better results after SFT): rows `pt_steps_N` fine-tune the same run at 1344 px
from its step N (`init.checkpoint_step`; the shared pre-training keeps those steps, `train.checkpoint.keep_steps`).
The figure's steps were not found: the grid 50k / 100k / 150k is ours; `sft_1344` is the 200k point.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="SFT image resolution: interpolated encoder and sub-image splitting",
    paper="MM1 (arXiv 2403.09611)", source="Fig. 7b, 7c",
    fixed="3B decoder pre-trained with the final recipe (ViT-H/14 378 px, C-Abstractor 144 tokens)",
)
STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", shared=True,
         overrides={"init.encoder": "gs://YOUR_BUCKET/converted/encoders/DFN5B-CLIP-ViT-H-14-378",
                    "init.decoder": "gs://YOUR_BUCKET/converted/decoders/llm_3b",
                    "train.checkpoint.keep_steps": (50_000, 100_000, 150_000)}),  # Fig. 7c's starts (grid ours)
    dict(name="sft", config="configs/mm1_sft.py"),
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)


def _sft(px, split, **extra):
    return dict(arg="decoder=3b", stage_overrides={"sft": {"model.encoder.image_size": px, "data.split.mode": split}},
                **extra)


ROWS = {
    "sft_378": _sft(378, "none"),
    "sft_448": _sft(448, "none"),
    "sft_560": _sft(560, "none"),
    "sft_672": _sft(672, "none"),
    "sft_1344": _sft(672, "mm1"),
    "sft_1792": _sft(896, "mm1", note="4 crops of 896 px assumed for 1792 px"),
    # Fig. 7c: SFT at 1344 px from earlier steps of the same pre-training run (grid ours)
    **{f"pt_steps_{k}k": dict(arg="decoder=3b", stage_overrides={"sft": {
        "model.encoder.image_size": 672, "data.split.mode": "mm1", "init.checkpoint_step": k * 1000}})
       for k in (50, 100, 150)},
}
BENCHMARKS = dict(bm.MM1_SFT)
METRICS = {"SFT average": dict(mean=tuple(b for b in BENCHMARKS if BENCHMARKS[b].get("scale")), shots=0)}
PAPER = {row: {"SFT average": ("not found", "Fig. 7b", "")} for row in ROWS}
PAPER["sft_1344"]["SFT average"] = ("about +15% relative over the low-resolution baseline", "Fig. 7b", "[S]")
PAPER["sft_1792"]["SFT average"] = ("slightly below 1344 px", "Fig. 7b", "[S]")
for _row in (r for r in ROWS if r.startswith("pt_steps_")):
    PAPER[_row]["SFT average"] = ("below the 200k-step run (sft_1344), rising with steps", "Fig. 7c", "[S]")
FINDINGS = (
    ("1344 px (4 x 672 crops + overview): about +15% relative over the low-resolution baseline; 1792 px: lower",
     "Fig. 7b", "[S]"),
    ("more pre-training steps give better results after SFT", "Fig. 7c", "[S]"),
)
