"""MM1.5-Video (arXiv 2409.20566, MM1.5-Video section): the image SFT model fine-tuned on video instruction data.

    python -m mm1_jax.train --config=configs/mm15_video.py:decoder=7b --workdir=DIR \\
        --config.init.checkpoint=MM15_SFT_WORKDIR/checkpoints

From the paper [S]: the stage starts from the image SFT model (configs/mm15_sft.py); its data are ShareGPTVideo
(556K), VideoChat2's instruction data (225K) and ActivityNet-QA (31.5K); each video is 24 frames sampled uniformly,
each frame a whole image of 144 tokens (no splitting), 3,456 image tokens a video.

Each dataset is read in its release format (mm1_jax.data.sources; paths are placeholders for the user's buckets):
  sharegptvideo  ShareGPTVideo/train_video_and_instruction video_instruction/train/sft/video_240k_caption_15k.jsonl
                 and video_caption_300k.jsonl (format jsonl: LLaVA records one a line; the names add up to 555K, our
                 reading of the paper's 556K), "video" a frame folder under image_root (the train_300k chunks,
                 untarred; RifleZhang/LLaVA-Hound-DPO setup/setup_train_data.sh).
  videochat2     OpenGVLab/VideoChat2-IT video/<task>/<subset>/train.json (format videochat2_json; which subsets make
                 the paper's 225K is not said); each subset's videos have their own folder (Ask-Anything
                 video_chat2/configs/instruction_data.py), so each train.json is copied into its videos' folder
                 (videochat2/<subset>/train.json) and image_root stays empty.
  activitynet_qa MILVLG/activitynet-qa dataset/train_q.json with train_a.json beside it (format activitynet_qa; 32,000
                 QA pairs in the release), image_root the ActivityNet v1.3 videos (v_<video_name>.<ext>).
Weights are the sizes the paper gives (a source's share of examples).

Ours (the paper does not state them): the sampling rule's formula ("uniform": SlowFast-LLaVA's segment midpoints,
mm1_jax.data.video); frames at the image SFT model's encoder resolution, 672 px (its checkpoint's position tables, no
resizing); data.seq_len 4096 = 3,456 frame tokens + 640 for the conversation (a longer one is truncated, never split);
max_images 24 (one video a row: a second cannot fit); one epoch (812.5K examples / batch 256 = 3,174 steps), Adafactor
LR 2e-5 (the image SFT's), 100 warmup steps, cosine to 10%.
`arg` as in mm15_sft: decoder=1b|3b|7b|30b|1b-moe|3b-moe.
"""
import math

import ml_collections

from configs import mm15_sft
from mm1_jax.data.config import get_data_config, source

# the paper's dataset sizes [S]: each source's weight (its share of examples)
SIZES = {"sharegptvideo": 556_000, "videochat2": 225_000, "activitynet_qa": 31_500}
FRAMES = 24  # [S] sampled uniformly, 144 tokens each, never split
SEQ_LEN = 4096  # ours: 24 x 144 = 3,456 frame tokens + 640 text tokens
BATCH = 256  # ours


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = mm15_sft.get_config(arg)  # the image SFT model's architecture (encoder at 672 px), eval, mesh
    root = "gs://YOUR_BUCKET/video_sft"
    sources = [
        source("sharegptvideo", "sft", "jsonl", f"{root}/sharegptvideo/sft/video_*.jsonl", SIZES["sharegptvideo"],
               image_root=f"{root}/sharegptvideo/train_300k"),
        source("videochat2", "sft", "videochat2_json", f"{root}/videochat2/*/train.json", SIZES["videochat2"]),
        source("activitynet_qa", "sft", "activitynet_qa", f"{root}/activitynet_qa/train_q.json",
               SIZES["activitynet_qa"], image_root=f"{root}/activitynet/videos"),
    ]
    config.data = get_data_config(sources=sources, tokenizer="gs://YOUR_BUCKET/tokenizer.json", seq_len=SEQ_LEN,
                                  max_images=FRAMES)
    config.data.video.update(frames=FRAMES, sampling="uniform")
    config.data.split.mode = "none"  # video frames are never split; the records here carry no still image
    config.model.max_images = FRAMES
    config.train.update(steps=math.ceil(sum(SIZES.values()) / BATCH), global_batch_size=BATCH)
    config.train.optimizer.update(name="adafactor", lr=2e-5, weight_decay=0.0, warmup_steps=100,
                                  final_lr_fraction=0.1)
    config.train.checkpoint.update(every_steps=500, keep=3)
    # the image SFT run's checkpoints (configs/mm15_sft.py's workdir); a placeholder like the data paths
    config.init.checkpoint = "gs://YOUR_BUCKET/runs/mm15_sft/checkpoints"
    return config
