"""MM1.5 (arXiv 2409.20566), its video and UI sections: MM1.5-Video and MM1.5-UI. Every row runs: the training-free
video row scores the image SFT model on 24 frames per clip, each a whole image of 144 tokens (NExT-QA, and
ActivityNet-QA, which needs eval.judge); the video SFT row first fine-tunes it on the video instruction data
(configs/mm15_video.py); the UI row on Ferret-UI's data (configs/mm15_ui.py), scored on Ferret-UI's referring and
grounding records (Ferret-UI's evaluation files are not public: give them as config.eval.ferret_ui_ref_i / grd_i).

Video: 24 uniformly sampled frames, 144 tokens each, no splitting; training-free (the image model on frames) and SFT
on ShareGPTVideo 556K + VideoChat2 225K + ActivityNet-QA 31.5K [S]. UI: a further SFT on Ferret-UI data (801K),
with Ferret-style box and point coordinates in the text [S].

At embedded scale (`EMBEDDED`), the video comparison in miniature: one pre-training and one image SFT (the embedded
SFT mixture) per seed, shared by both rows; `video_training_free_3b` scores that image model on the world's held-out
clips (8 frames of 16 tokens each, sampled 'uniform'), `video_sft_7b` first fine-tunes it on the world's video SFT
data alone (sft/video.json: questions on order, direction, count and colour change). Both rows are the tiny model:
the names are the paper's rows, not their sizes. Results: docs/miniature/mm15_video/.
MM1.5-UI in miniature: `ui_1b` fine-tunes the same image SFT model on the world's UI screens alone (sft/ui.json,
Ferret-UI's release format: referring and grounding questions with boxes on Ferret's 0-999 grid) and is scored with
the image SFT model (`video_training_free_3b`) on held-out screens through Ferret-UI's reader and scorer
(embedded_ui_ref, embedded_ui_grd; eval.box_format ferret). Results: docs/miniature/mm15_ui/.
"""
from configs.studies import _common as bm
from mm1_jax.eval import suites

STUDY = dict(
    title="MM1.5-Video and MM1.5-UI",
    paper="MM1.5 (arXiv 2409.20566)", source="MM1.5-Video and MM1.5-UI sections",
    fixed="MM1.5 final recipe",
)
# 24 frames of 144 tokens (3,456 image tokens) and the question: room for 32 images and 4,096 tokens at evaluation
VIDEO_EVAL = {"data.max_images": 32, "model.max_images": 32, "data.seq_len": 4096, "eval.video_frames": 24,
              "eval.video_sampling": "uniform"}
# Ferret's [x1, y1, x2, y2] on the 0-999 grid of the whole screen (mm1_jax.data.coordinates; MM1.5 does not state
# its syntax or bin count: Ferret-UI's release is what is followed)
UI_EVAL = {"eval.box_format": "ferret"}
FINAL = "gs://YOUR_BUCKET/studies/mm15_final_{}/cpt/checkpoints"  # the MM1.5 model after continual pre-training
STAGES = (
    dict(name="sft", config="configs/mm15_sft.py"),  # the image SFT (MM1.5's mixture)
    dict(name="video_sft", config="configs/mm15_video.py"),  # ShareGPTVideo, VideoChat2, ActivityNet-QA
    dict(name="ui_sft", config="configs/mm15_ui.py"),  # Ferret-UI's training data
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)
ROWS = {
    # training-free: the image model scored on frames
    "video_training_free_3b": dict(arg="decoder=3b", skip=("video_sft", "ui_sft"),
                                   stage_overrides={"sft": {"init.checkpoint": FINAL.format("3b")},
                                                    "eval": VIDEO_EVAL}),
    "video_sft_7b": dict(arg="decoder=7b", skip=("ui_sft",),
                         stage_overrides={"sft": {"init.checkpoint": FINAL.format("7b")}, "eval": VIDEO_EVAL}),
    "ui_1b": dict(arg="decoder=1b", skip=("video_sft",),
                  stage_overrides={"sft": {"init.checkpoint": FINAL.format("1b")}, "eval": UI_EVAL}),
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

# Embedded scale: the tiny model, 300 steps per training stage; the eval stage scores all 200 held-out clips and all
# 180 + 180 held-out UI questions.
EMBEDDED = dict(
    stages=(
        dict(name="pretrain", config="configs/tiny.py", shared=True,
             overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_PRETRAIN}),
        dict(name="sft", config="configs/tiny.py", shared=True,
             overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_SFT}),
        dict(name="video_sft", config="configs/tiny.py",
             overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_VIDEO_SFT}),
        dict(name="ui_sft", config="configs/tiny.py", overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_UI_SFT}),
        dict(name="eval", evaluate=True, shots=(0,), limit=200),
    ),
    rows={"video_training_free_3b": dict(arg="main", skip=("video_sft", "ui_sft")),
          "video_sft_7b": dict(arg="main", skip=("ui_sft",)),
          # box_format: how the harness writes a grounding task's boxes; the Ferret-UI tasks' boxes are already text
          # on Ferret's grid (the reader writes them), so it marks the convention rather than changing a score
          "ui_1b": dict(arg="main", skip=("video_sft",), stage_overrides={"eval": UI_EVAL})},
    benchmarks={**bm.TINY_VIDEO, **bm.TINY_UI},
    metrics={**bm.TINY_VIDEO_METRICS, **bm.TINY_UI_METRICS},
)
