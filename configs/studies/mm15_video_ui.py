"""MM1.5 (arXiv 2409.20566), its video and UI sections: MM1.5-Video and MM1.5-UI. The training-free video row runs
(the image SFT model scored on 24 frames per clip, each a whole image of 144 tokens: NExT-QA and ActivityNet-QA,
which needs eval.judge); video SFT waits for its data config and UI for Ferret-UI's data and tasks.

Video: 24 uniformly sampled frames, 144 tokens each, no splitting; training-free (the image model on frames) and SFT
on ShareGPTVideo 556K + VideoChat2 225K + ActivityNet-QA 31.5K [S]. UI: a further SFT on Ferret-UI data (801K),
with Ferret-style box and point coordinates in the text [S].
"""
from configs.studies import _common as bm
from mm1_jax.eval import suites

STUDY = dict(
    title="MM1.5-Video and MM1.5-UI (training-free video runnable)",
    paper="MM1.5 (arXiv 2409.20566)", source="MM1.5-Video and MM1.5-UI sections",
    fixed="MM1.5 final recipe",
)
VIDEO_SFT = ("the video SFT stage's data config (configs/mm15_video.py: ShareGPTVideo, VideoChat2 and ActivityNet-QA "
             "in their release formats)")
# 24 frames of 144 tokens (3,456 image tokens) and the question: room for 32 images and 4,096 tokens at evaluation
VIDEO_EVAL = {"data.max_images": 32, "model.max_images": 32, "data.seq_len": 4096, "eval.video_frames": 24,
              "eval.video_sampling": "uniform"}
UI = ("Ferret-UI data and tasks, and Ferret-style box / point coordinate tokens (syntax and bin count not verified)")
FINAL = "gs://YOUR_BUCKET/studies/mm15_final_{}/cpt/checkpoints"  # the MM1.5 model after continual pre-training
STAGES = (
    dict(name="sft", config="configs/mm1_sft.py"),  # the image SFT (MM1.5's mixture)
    dict(name="video_sft", config="configs/mm1_sft.py"),
    dict(name="ui_sft", config="configs/mm1_sft.py"),
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)
ROWS = {
    # training-free: the image model scored on frames
    "video_training_free_3b": dict(arg="decoder=3b", skip=("video_sft", "ui_sft"),
                                   stage_overrides={"sft": {"init.checkpoint": FINAL.format("3b")},
                                                    "eval": VIDEO_EVAL}),
    "video_sft_7b": dict(arg="decoder=7b", skip=("ui_sft",), missing=VIDEO_SFT,
                         stage_overrides={"sft": {"init.checkpoint": FINAL.format("7b")}, "eval": VIDEO_EVAL}),
    "ui_1b": dict(arg="decoder=1b", skip=("video_sft",), missing=UI,
                  stage_overrides={"sft": {"init.checkpoint": FINAL.format("1b")}}),
}
BENCHMARKS = bm.study_table({
    "NExTQA": suites.benchmark("nextqa"),
    "ActivityNet-QA": suites.benchmark("activitynet_qa"),
    "Ref-i": suites.benchmark("ferret_ui_ref_i"),
    "Grd-i": suites.benchmark("ferret_ui_grd_i"),
})
METRICS = {name: dict(mean=(name,), shots=0) for name in BENCHMARKS}
PAPER = {
    "video_training_free_3b": {"NExTQA": (72.8, "MM1.5-Video section", "[S]")},
    "video_sft_7b": {"ActivityNet-QA": (60.9, "MM1.5-Video section", "[S]")},
    "ui_1b": {"Ref-i": (90.0, "MM1.5-UI section", "[S]"), "Grd-i": (86.5, "MM1.5-UI section", "[S]")},
}
FINDINGS = (("MM1.5-UI-1B vs Ferret-UI-13B: Ref-i 90.0 vs 80.5, Grd-i 86.5 vs 79.4", "MM1.5-UI section", "[S]"),)
