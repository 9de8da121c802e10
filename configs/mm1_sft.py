"""MM1 supervised fine-tuning (arXiv 2403.09611 sec. 5): the pre-trained model on an SFT mixture.

    python -m mm1_jax.train --config=configs/mm1_sft.py:decoder=3b --workdir=gs://BUCKET/runs/mm1-3b-sft \\
        --config.init.checkpoint=gs://BUCKET/runs/mm1-3b/checkpoints

Recipe (items marked unverified come from a secondary summary, not the paper): 10k steps, batch 256, sequence 2048,
Adafactor, LR 1e-5 (unverified), everything trained; high resolution by image splitting — a 1344 px image
becomes 4 crops + an overview of 672 px (mode 'mm1'), 144 tokens each, the encoder running at 672 px.
`arg` as in mm1_pretrain: decoder=1b|3b|7b|30b, ...
"""
import ml_collections

from configs import mm1_pretrain
from mm1_jax.data.config import get_data_config, source
from mm1_jax.train.config import init_defaults, train_defaults


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = mm1_pretrain.get_config(arg)
    # crops enter the encoder at 672 px: init.checkpoint's 378 px position tables (ViT and C-Abstractor) are
    # interpolated bicubically when this stage starts (mm1_jax.runtime.checkpoint.restore_params)
    config.model.encoder.image_size = 672
    config.data = get_data_config(
        sources=[source("sft", "sft", "llava_json", "gs://YOUR_BUCKET/sft/mixture.json", 1.0,
                        image_root="gs://YOUR_BUCKET/sft/")],
        tokenizer="gs://YOUR_BUCKET/tokenizer.json",
        seq_len=2048,
        max_images=16,
    )
    config.data.split.mode = "mm1"  # 2x2 crops + overview
    config.train = train_defaults()
    config.train.update(steps=10_000, global_batch_size=256, log_every=50, sample_every=0, num_samples=0)
    config.train.optimizer.update(name="adafactor", lr=1e-5, weight_decay=0.0, warmup_steps=500,
                                  final_lr_fraction=0.1, clip_norm=1.0)
    config.train.checkpoint.update(every_steps=1000, keep=3)
    config.init = init_defaults()  # set init.checkpoint to the pre-training run's checkpoints
    return config
