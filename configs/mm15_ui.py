"""MM1.5-UI (arXiv 2409.20566, MM1.5-UI section): the MM1.5 SFT model fine-tuned further on Ferret-UI's data.

    python -m mm1_jax.train --config=configs/mm15_ui.py:decoder=1b --workdir=DIR \\
        --config.init.checkpoint=MM15_SFT_WORKDIR/checkpoints

From the paper [S]: MM1.5-UI starts from the MM1.5 SFT model (configs/mm15_sft.py) and is fine-tuned on Ferret-UI's
data (Ferret-UI: arXiv 2404.05719), 801K samples [S, a secondary source]; regions are Ferret-style coordinates in
the text, for input and output (mm1_jax.data.coordinates: Ferret-UI's release rule, the 0-999 grid of the whole
screen).

Data: Ferret-UI's task files in its release format (format ferret_ui_json, mm1_jax.data.sources.FerretUIJsonSource;
paths are placeholders for the user's buckets: Ferret-UI's training data is not released), one source per platform
and task file. The task names are those Ferret-UI's loader dispatches on (ferretui/ferretui/train/train.py,
LazySupervisedDataset.__init__, each a substring of the file's path):
  elementary, iPhone and Android screens (the paper's elementary tasks):
    referring   ocr, icon_recognition, widget_classification
    grounding   widget_listing, find_text, find_icons, find_widget
  Android only (Spotlight's public tasks on RICO screens): screen2words, widgetcaptions, taperception
  advanced, iPhone and Android (the paper's advanced tasks): detailed_description, conversation_perception,
    conversation_interaction, function (function inference)
Ferret-UI's loader concatenates every file and shuffles (train_UI.sh: --data_multiple 1), so each task counts by its
size: give each source its file's record count as `weight` (1.0 each here, sizes unknown).

Hyperparameters. Ferret-UI's (ferretui/README.md: "a learning rate of 2e-5 for 3 epochs with a global batch size of
128"): lr 2e-5, 3 epochs, batch 128. Ferret-UI's training script (ferretui/scripts/train/train_UI.sh, on the Hugging
Face Trainer's defaults): AdamW (b2 0.999, eps 1e-8, gradient clipping at 1.0), cosine decay to 0, warmup 3% of the
steps (--warmup_ratio 0.03), weight decay 0. Ours (MM1.5 does not state them for MM1.5-UI): those choices for MM1.5-UI
itself; steps = 3 epochs of the 801K samples [S] at batch 128 = 18,774; the SFT model's image handling kept (MM1.5's
dynamic splitting, 672 px crops, (n_min, n_max) = (4, 9), overview after, index markers); seq_len 4096.
Ferret-UI's own image scheme, for comparison: --config.data.split.mode=ferret_ui --config.data.split.overview=before
(the screen cut in two along its longer side, the global view first, mm1_jax.data.images.split_image_ferret_ui).
`arg` as in mm15_sft: decoder=1b|3b|7b|30b|1b-moe|3b-moe.
"""
import math

import ml_collections

from configs import mm15_sft
from mm1_jax.data.config import get_data_config, source

PLATFORMS = ("iphone", "android")
ELEMENTARY = ("ocr", "icon_recognition", "widget_classification",  # referring
              "widget_listing", "find_text", "find_icons", "find_widget")  # grounding
SPOTLIGHT = ("screen2words", "widgetcaptions", "taperception")  # Android (RICO) only
ADVANCED = ("detailed_description", "conversation_perception", "conversation_interaction", "function")
SAMPLES = 801_000  # [S] MM1.5's count of Ferret-UI's data
EPOCHS, BATCH, LR = 3, 128, 2e-5  # Ferret-UI's (ferretui/README.md)
WARMUP_RATIO = 0.03  # Ferret-UI's (train_UI.sh --warmup_ratio 0.03)


def task_files() -> list[tuple[str, str]]:
    """(platform, task) of every Ferret-UI training file, elementary then Spotlight then advanced."""
    return ([(p, t) for p in PLATFORMS for t in ELEMENTARY] + [("android", t) for t in SPOTLIGHT]
            + [(p, t) for p in PLATFORMS for t in ADVANCED])


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = mm15_sft.get_config(arg)  # the SFT model's architecture (encoder at 672 px), splitting, eval, mesh
    root = "gs://YOUR_BUCKET/ferret_ui"
    sources = [source(f"{platform}_{task}", "sft", "ferret_ui_json", f"{root}/{platform}/{task}_train.json", 1.0,
                      image_root=f"{root}/{platform}/images") for platform, task in task_files()]
    split = dict(config.data.split)
    config.data = get_data_config(sources=sources, tokenizer="gs://YOUR_BUCKET/tokenizer.json", seq_len=4096,
                                  max_images=16)
    config.data.split.update(split)  # ours: the SFT model's MM1.5 dynamic splitting, unchanged
    steps = math.ceil(EPOCHS * SAMPLES / BATCH)
    config.train.update(steps=steps, global_batch_size=BATCH)
    config.train.optimizer.update(name="adamw", lr=LR, b1=0.9, b2=0.999, eps=1e-8, clip_norm=1.0, weight_decay=0.0,
                                  warmup_steps=math.ceil(WARMUP_RATIO * steps), final_lr_fraction=0.0)
    config.train.checkpoint.update(every_steps=1000, keep=3)
    # the image SFT run's checkpoints (configs/mm15_sft.py's workdir); a placeholder like the data paths
    config.init.checkpoint = "gs://YOUR_BUCKET/runs/mm15_sft/checkpoints"
    return config
