"""MM1.5 supervised fine-tuning (arXiv 2409.20566): the continual-pre-trained model on MM1.5's SFT mixture.

    python -m mm1_jax.train --config=configs/mm15_sft.py:decoder=3b --workdir=DIR \\
        --config.init.checkpoint=CONTINUAL_WORKDIR/checkpoints

The mixture by category (one LLaVA-style json per category; paths are placeholders for the user's buckets), with
MM1.5's final weights: single-image 0.8 : multi-image 0.1 : text-only 0.1 (w_single, w_multi, w_text), the single
images split as text-rich 37.2, refer & ground 22.5, general 11.3, math 5.6, code 2.3, science 1.1 percent of all
SFT data. (From a secondary summary of the paper, not checked against its text; the per-category alpha weights
relative to general data that the paper chose on MMBase -- science 0.1, math 0.5, code 0.2, refer & ground 2.0 --
are a study's rows, `--config.data.weights=...` by source name.) Dynamic image splitting at 672 px crops with
(n_min, n_max) = (4, 9), overview after the crops, index markers; the encoder runs at 672 px. 23k steps (one
epoch), batch 256, LR 2e-5 (same secondary source); Adafactor as in MM1's SFT (our assumption).
`arg` as in mm1_pretrain: decoder=1b|3b|7b|30b|1b-moe|3b-moe.
"""
import ml_collections

from configs import mm1_pretrain
from mm1_jax.data.config import get_data_config, source
from mm1_jax.train.config import init_defaults, train_defaults

# category -> percent of all SFT data (single-image categories sum to 80, multi-image 10, text-only 10)
MIXTURE = {"text_rich": 37.2, "refer_ground": 22.5, "general": 11.3, "math": 5.6, "code": 2.3, "science": 1.1,
           "multi_image": 10.0, "text": 10.0}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = mm1_pretrain.get_config(arg)
    config.model.encoder.image_size = 672  # as in continual pre-training: 672 px crops enter the encoder unshrunk
    sources = [source(name, "sft", "llava_json", f"gs://YOUR_BUCKET/sft/{name}.json", weight,
                      image_root="gs://YOUR_BUCKET/sft/") for name, weight in MIXTURE.items()]
    config.data = get_data_config(sources=sources, tokenizer="gs://YOUR_BUCKET/tokenizer.json", seq_len=4096,
                                  max_images=16)
    config.data.split.update(mode="mm1.5", kinds=("sft",), r=672, n_min=4, n_max=9, overview="after", markers="index")
    config.train = train_defaults()
    config.train.update(steps=23_000, global_batch_size=256, log_every=50)
    config.train.optimizer.update(name="adafactor", lr=2e-5, weight_decay=0.0, warmup_steps=500,
                                  final_lr_fraction=0.1)
    config.train.checkpoint.update(every_steps=1000, keep=3)
    config.init = init_defaults()  # init.checkpoint: the continual pre-training run's checkpoints
    config.eval.split_n_max = 16  # MM1.5 infers with up to 16 crops (n_min, n_max) = (4, 16)
    return config
