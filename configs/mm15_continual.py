"""MM1.5 continual pre-training (arXiv 2409.20566): OCR-rich data at high resolution after pre-training.

    python -m mm1_jax.train --config=configs/mm15_continual.py:decoder=3b --workdir=DIR \\
        --config.init.checkpoint=PRETRAIN_WORKDIR/checkpoints

Recipe: 30k steps, batch 256, Adafactor LR 1e-5 with cosine decay to 0 (three secondary summaries of MM1.5's CPT
setup agree on "cosine to 0"; the 10% floor this file had was MM1's pre-training schedule, not MM1.5's CPT; the
warmup length is not given: ours), 1344 px images split dynamically into 672 px crops (n in [4, 9]) plus an overview,
144 tokens each; every part trained.
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
        sources=[source("ocr", "caption", "wds", "gs://YOUR_BUCKET/ocr/shard-*.tar", 1.0),
                 # MM1.5's other continual pre-training data (Fig. 9b), off unless weighted by name (data.weights)
                 source("llava_recap", "caption", "wds", "gs://YOUR_BUCKET/llava_recap/shard-*.tar", 0),
                 source("sharegpt4v_pt", "caption", "wds", "gs://YOUR_BUCKET/sharegpt4v_pt/shard-*.tar", 0)],
        tokenizer="gs://YOUR_BUCKET/tokenizer.json",
        seq_len=4096,
        max_images=16,
    )
    config.data.split.update(mode="mm1.5", kinds=("caption",), r=672, n_min=4, n_max=9)
    config.train = train_defaults()
    config.train.update(steps=30_000, global_batch_size=256, log_every=50, num_samples=0)
    config.train.optimizer.update(name="adafactor", lr=1e-5, weight_decay=0.0, warmup_steps=1000,
                                  final_lr_fraction=0.0)
    config.train.checkpoint.update(every_steps=1000, keep=3)
    config.init = init_defaults()
    return config
