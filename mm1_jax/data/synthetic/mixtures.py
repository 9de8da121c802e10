"""The embedded dataset as data configs: its sources (kind, format, files), each stage's mixture weights, and
`ensure_data`, which writes the dataset a config reads the first time it is needed."""
import os
from typing import Any

from mm1_jax.data import config as config_lib
from mm1_jax.data.synthetic.writers import default_directory, ensure_generated


# The world's sources (kind, format, path parts) and each stage's mixture weights.
EMBEDDED_SOURCES = {
    "caption": ("caption", "wds", "captions", "shard-*.tar"),
    "interleaved": ("interleaved", "parquet", "interleaved", "*.parquet"),
    "text": ("text", "arrayrecord", "text", "*.array_record"),
    "vqa": ("sft", "llava_json", "sft", "vqa.json"),
    "ocr": ("sft", "jsonl", "sft", "ocr.jsonl"),
    "grounding": ("sft", "jsonl", "sft", "grounding.jsonl"),
    "alt_text": ("caption", "wds", "alt_text", "shard-*.tar"),
    "dense_captions": ("caption", "wds", "dense_captions", "shard-*.tar"),
    "ocr_pages": ("caption", "wds", "ocr_pages", "shard-*.tar"),
    **{name: ("sft", "llava_json", "sft", f"{name}.json")
       for name in ("doc_vqa", "count_vqa", "refer", "math", "knowledge", "multi_image", "distractors",
                    "text_dialogue", "video")},
    "ui": ("sft", "ferret_ui_json", "sft", "ui.json"),
}
# a video reaches the tiny model as 8 frames (MM1.5-Video samples 24 'uniform'; 8 fill the embedded max_images)
EMBEDDED_VIDEO = dict(frames=8, sampling="uniform")
MIXTURES = {
    "pretrain": {"caption": 45, "interleaved": 45, "text": 10},
    # the README's main job; every other source is listed at weight 0 (never opened) so data.weights can use it
    "main": {"caption": 45, "interleaved": 37, "text": 8, "vqa": 10,
             **{name: 0 for name in EMBEDDED_SOURCES if name not in ("caption", "interleaved", "text", "vqa")}},
    # MM1.5's continual pre-training: OCR-rich data at high resolution (its final recipe: OCR data alone)
    "cpt": {"ocr_pages": 100, "dense_captions": 0, "caption": 0, "alt_text": 0, "text": 0},
    "sft": {"vqa": 20, "ocr": 8, "grounding": 8, "doc_vqa": 15, "count_vqa": 10, "refer": 8, "math": 7,
            "knowledge": 5, "multi_image": 7, "distractors": 6, "text_dialogue": 6},
}

# The SFT sources by MM1.5's SFT categories (arXiv 2409.20566 Sec. 3.2; `data.sft.categories`, mm1_jax.data.config):
# the mapping is ours. count_vqa (counting scenes, CLEVR-like) goes with math, as MM1.5's math data holds CLEVR and
# IconQA [S1]; knowledge (shape facts, half of them without an image) stands for science. The world has no code data.
EMBEDDED_SFT_CATEGORIES = {
    "vqa": "general", "ocr": "text_rich", "doc_vqa": "text_rich", "knowledge": "science", "count_vqa": "math",
    "math": "math", "grounding": "refer_ground", "refer": "refer_ground", "multi_image": "multi_image",
    "distractors": "multi_image", "text_dialogue": "text",
}


def embedded_data_config(
    stage: str = "pretrain", directory: str | None = None, seed: int = 0, scale: float = 1.0, **overrides: Any
):
    """Data config over the embedded dataset; nothing is written: the pipeline generates the dataset into
    `directory` (default: `default_directory(seed, scale)`) when it first reads it (`ensure_data`).
    stage: pretrain | main | cpt | sft.

    pretrain: captions 45 / interleaved 45 / text 10 (MM1).
    main (the README's main job): captions 45 / interleaved 37 / text 8 / multi-turn VQA dialogues 10, so one short
    run gives a model that both captions and answers questions (0-shot, or k-shot as a (k+1)-turn chat); every
    other source at weight 0, for `data.weights` (e.g. "caption:0,alt_text:45").
    cpt (MM1.5 continual pre-training): text-rich pages (ocr_pages) alone; dense captions, captions, alt text and
    text at weight 0.
    sft: the SFT categories: general VQA 20 / ocr 8 / grounding 8 / doc_vqa 15 / count_vqa 10 / refer 8 / math 7 /
    knowledge 5 / multi_image 7 / distractors 6 / text_dialogue 6.
    The video SFT source (`video`, sft/video.json) and the UI screens (`ui`, sft/ui.json, Ferret-UI's release
    format) are in main at weight 0 (e.g. data.weights "...,video:1").
    Defaults sized for the tiny model: seq_len 256, max_images 8, a video as 8 uniformly sampled frames
    (`EMBEDDED_VIDEO`); overrides replace any top-level field.
    """
    if stage not in MIXTURES:
        raise ValueError(f"embedded_data_config: stage must be one of {', '.join(MIXTURES)}, got {stage!r}.")
    root = directory or default_directory(seed, scale)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    sources = [config_lib.source(name, *EMBEDDED_SOURCES[name][:2], j(*EMBEDDED_SOURCES[name][2:]), weight)
               for name, weight in MIXTURES[stage].items()]
    fields = dict(sources=sources, tokenizer=j("tokenizer.json"), seq_len=256, max_images=8, seed=seed,
                  video=dict(EMBEDDED_VIDEO),
                  embedded=dict(directory=root, seed=seed, scale=float(scale)))
    fields.update(overrides)
    return config_lib.get_data_config(**fields)


def ensure_data(data_config: Any) -> str:
    """Generate the embedded dataset a data config reads (`data.embedded`) if it is missing; its directory, or ''
    when the config reads other data. Called where the data is first needed (the pipeline, an evaluation)."""
    embedded = data_config.get("embedded") if hasattr(data_config, "get") else None
    if not embedded or not embedded.get("directory"):
        return ""
    return ensure_generated(embedded["directory"], embedded.get("seed", 0), embedded.get("scale", 1.0))
