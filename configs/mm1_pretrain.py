"""MM1 pre-training (arXiv 2403.09611): the final recipe and the ablation rows of its studies.

`get_config(arg)`, arg = 'key=value,key=value' over:
  decoder    1b | 3b | 7b | 30b | 3b-moe | 7b-moe | 1b-moe               (final recipe: 3b, 7b, 30b and MoEs)
  encoder    clip_vit_l14_224 | clip_vit_l14_336 | clip_vit_h14_336 | clip_vit_h14_378 | aim_600m_224 |
             aim_1b_224 | aim_3b_224 | siglip_so400m14_384           (final: clip_vit_h14_378)
  connector  c_abstractor | avg_pool | attn_pool | mlp               (final: c_abstractor)
  tokens     64 | 144 | any square                                   (final: 144)
e.g. the connector ablation row `--config=configs/mm1_pretrain.py:decoder=1b,connector=avg_pool,tokens=64`.
Ablations in the paper use a 1.2B decoder (encoder ablation: 2.9B); the 1b and 3b presets stand for those.
"""
import ml_collections

from mm1_jax.data.config import get_data_config, source
from mm1_jax.models import presets
from mm1_jax.eval.datasets import eval_defaults
from mm1_jax.train.config import init_defaults, train_defaults

DEFAULTS = dict(decoder="3b", encoder="clip_vit_h14_378", connector="c_abstractor", tokens="144")


def parse_arg(arg: str) -> dict[str, str]:
    """'decoder=7b,tokens=64' -> {'decoder': '7b', 'tokens': '64'} over DEFAULTS, unknown keys refused."""
    row = dict(DEFAULTS)
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key not in DEFAULTS or not value:
            raise ValueError(f"config argument {item!r} is not key=value with key in {', '.join(DEFAULTS)}.")
        row[key] = value
    return row


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    row = parse_arg(arg)
    config = ml_collections.ConfigDict()
    config.model = presets.model_config(
        decoder=row["decoder"], encoder=row["encoder"], connector=row["connector"], num_tokens=int(row["tokens"]),
        max_images=16, dtype="bfloat16",
    )
    # 45% captions / 45% interleaved / 10% text (MM1 sec. 3.3); paths are placeholders for the user's buckets.
    config.data = get_data_config(
        sources=[
            source("caption", "caption", "wds", "gs://YOUR_BUCKET/captions/shard-*.tar", 45),
            source("interleaved", "interleaved", "parquet", "gs://YOUR_BUCKET/interleaved/*.parquet", 45),
            source("text", "text", "jsonl", "gs://YOUR_BUCKET/text/*.jsonl", 10),
            # off in the final recipe (weight 0: never opened); the data studies weight them by name with
            # --config.data.weights: VeCap synthetic captions (MM1 Fig. 5d) and MM1.5's high-quality text (Fig. 10)
            source("vecap", "caption", "wds", "gs://YOUR_BUCKET/vecap/shard-*.tar", 0),
            source("hq_text", "text", "jsonl", "gs://YOUR_BUCKET/hq_text/*.jsonl", 0),
        ],
        tokenizer="gs://YOUR_BUCKET/tokenizer.json",
        seq_len=4096,
        max_images=16,
    )
    config.mesh = dict(data=1, fsdp=-1, tensor=1, expert=1)
    # Final recipe: 200k steps, batch 512, everything trained; MM1's LR law (peak LR from the decoder's size,
    # weight decay 0.1 x LR), warmup 2k steps and cosine to 10% (MM1, arXiv 2403.09611; warmup length and floor from a
    # secondary summary, not checked against the paper).
    config.train = train_defaults()
    config.train.update(steps=200_000, global_batch_size=512, log_every=50, num_samples=0)
    config.train.optimizer.update(name="adamw", lr_rule="mm1_law", warmup_steps=2000, final_lr_fraction=0.1)
    config.train.checkpoint.update(every_steps=2000, keep=3)
    config.init = init_defaults()
    config.eval = eval_defaults()  # each task's files: --config.eval.textcaps.annotations=... (mm1_jax.eval.datasets)
    return config
