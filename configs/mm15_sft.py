"""MM1.5 supervised fine-tuning (arXiv 2409.20566): the continual-pre-trained model on MM1.5's SFT mixture.

    python -m mm1_jax.train --config=configs/mm15_sft.py:decoder=3b --workdir=DIR \\
        --config.init.checkpoint=CONTINUAL_WORKDIR/checkpoints

The mixture by category (one LLaVA-style json per category, each source named after its category; paths are
placeholders for the user's buckets), weighted as MM1.5 does (`data.sft`, resolved by mm1_jax.data.config.sft_mixture):
groups (w_single, w_multi, w_text) = (0.8, 0.1, 0.1) and, inside the single-image group, alpha examples of each
category per example of general data -- science 0.1, math 0.5, code 0.2, refer & ground 2.0 [S, three secondary
summaries; chosen on MMBase, configs/studies/mm15_sft_mixture.py] and text-rich 3.3 (ours: not found; the published
split's 37.2 / 11.3). They resolve to the published split (percent of all SFT data, [S]) within rounding: text-rich
37.2, refer & ground 22.5, general 11.3, math 5.6, code 2.3, science 1.1, multi-image 10, text-only 10 (PUBLISHED_SPLIT;
tests/test_sft_mixture.py). A category of several files: list each as a source of that category, its `weight` its
size (sources share their category by weight). `--config.data.sft.alpha.science=0.2`,
`--config.data.sft.groups='(0.7, 0.2, 0.1)'` change the mixture. Dynamic image splitting at 672 px crops with
(n_min, n_max) = (4, 9), overview after the crops, index markers; the encoder runs at 672 px. 23k steps (one
epoch), batch 256, LR 2e-5 (same secondary source); Adafactor as in MM1's SFT (our assumption).
`arg` as in mm1_pretrain: decoder=1b|3b|7b|30b|1b-moe|3b-moe.
"""
import ml_collections

from configs import mm1_pretrain
from mm1_jax.data.config import SFT_ALPHA, SFT_FINAL_GROUPS, get_data_config, source
from mm1_jax.train.config import init_defaults, train_defaults

# MM1.5's published split, category -> percent of all SFT data [S] (single-image categories sum to 80, multi-image 10,
# text-only 10); what the config's data.sft resolves to, within rounding
PUBLISHED_SPLIT = {"text_rich": 37.2, "refer_ground": 22.5, "general": 11.3, "math": 5.6, "code": 2.3, "science": 1.1,
                   "multi_image": 10.0, "text": 10.0}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = mm1_pretrain.get_config(arg)
    config.model.encoder.image_size = 672  # as in continual pre-training: 672 px crops enter the encoder unshrunk
    sources = [source(name, "sft", "llava_json", f"gs://YOUR_BUCKET/sft/{name}.json", 1.0,
                      image_root="gs://YOUR_BUCKET/sft/") for name in PUBLISHED_SPLIT]
    config.data = get_data_config(sources=sources, tokenizer="gs://YOUR_BUCKET/tokenizer.json", seq_len=4096,
                                  max_images=16)
    config.data.sft.categories = ",".join(f"{name}:{name}" for name in PUBLISHED_SPLIT)
    config.data.sft.alpha.update(SFT_ALPHA)  # MM1.5's final alphas (text_rich's ours)
    config.data.sft.groups = SFT_FINAL_GROUPS
    config.data.split.update(mode="mm1.5", kinds=("sft",), r=672, n_min=4, n_max=9, overview="after", markers="index")
    config.train = train_defaults()
    config.train.update(steps=23_000, global_batch_size=256, log_every=50)
    config.train.optimizer.update(name="adafactor", lr=2e-5, weight_decay=0.0, warmup_steps=500,
                                  final_lr_fraction=0.1)
    config.train.checkpoint.update(every_steps=1000, keep=3)
    config.init = init_defaults()  # init.checkpoint: the continual pre-training run's checkpoints
    config.eval.split_n_max = 16  # MM1.5 infers with up to 16 crops (n_min, n_max) = (4, 16)
    return config
