"""The embedded default: a CPU-sized MM1 on the synthetic dataset the package generates.

    python -m mm1_jax.train --config=configs/tiny.py --workdir=/tmp/tiny
    python -m mm1_jax.models.summary --config=configs/tiny.py

get_config(arg) picks the data: 'main' (default, the README's main job) is MM1's pre-training sources with 10% of
multi-turn VQA dialogues mixed in (captions 45 / interleaved 37 / text 8 / VQA 10), so one run gives a model that
captions and answers; 'pretrain' is MM1's 45/45/10 alone; 'sft' is the embedded SFT mixture (VQA, OCR, grounding)
to continue from a pre-trained model.
"""
import os

import ml_collections

from mm1_jax.data import synthetic
from mm1_jax.eval.datasets import eval_defaults
from mm1_jax.train.config import init_defaults, train_defaults


def get_config(arg: str = "main") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data = synthetic.embedded_data_config(stage=arg or "main")  # written when the pipeline first reads it
    # the embedding table rounded up to a multiple of 8 rows (unused ids), so the vocabulary splits over tensor axes
    vocab_size = -(-synthetic.vocab_size() // 8) * 8

    config.model = ml_collections.ConfigDict()
    config.model.kind = "mm1"  # 'owl3': an mPLUG-Owl3 (mm1_jax.models.owl3); both built by models.build_model
    # CLIP-style encoder on 64 px images, 8 px patches: an 8 x 8 grid of 64 patch tokens. Sized (with the decoder)
    # so the main job learns to caption in ~10 minutes on 2 CPU cores.
    config.model.encoder = dict(
        style="clip", image_size=64, patch_size=8, width=64, depth=2, num_heads=4, mlp_dim=256, norm_eps=1e-5,
        feature_layer=-1, feature_norm=False, drop_class_token=True,
    )
    # C-Abstractor 8 x 8 -> 4 x 4 = 16 image tokens.
    # (num_heads is read by --config.model.connector.name=attn_pool)
    config.model.connector = dict(name="c_abstractor", num_tokens=16, hidden_dim=64, depth=1, mlp_depth=2, num_heads=4)
    config.model.decoder = dict(
        vocab_size=vocab_size, width=128, depth=3, num_heads=4, num_kv_heads=2, mlp_dim=384, rope_theta=10000.0,
        tie_embeddings=True, norm_eps=1e-5, scan_layers=False, remat_policy="none",
        hyper_layers=(),  # e.g. --config.model.decoder.hyper_layers=(1,): mPLUG-Owl3 hyper attention in layer 1
        hyper_gate=True, hyper_shared_norm=True, hyper_mi_rope=True,  # its parts (mPLUG-Owl3 v2 Table 10 ablates them)
        cross_attention_layers=(), cross_attention_position="pre",  # Flamingo-style blocks (mPLUG-Owl3 Table 8)
    )
    config.model.max_images = config.data.max_images
    config.model.dtype = "float32"

    config.mesh = dict(data=1, fsdp=-1, tensor=1, expert=1)

    # Sized so the README's main job learns to caption and answer in under 10 minutes on 2 CPU cores, both
    # evaluations included: loss about 5.6 -> 0.25; embedded captioning exact match about 0.3 at 0-shot (the
    # interleaved documents describe pictures in 7 conventions, so the plain caption style is one of several); embedded
    # VQA accuracy about 0.9 at 0 and 4 shots.
    config.train = train_defaults()
    config.train.steps = 1000
    config.train.global_batch_size = 8
    config.train.log_every = 20
    config.train.sample_task = "embedded_cap"  # held-out captions, logged as text samples
    config.train.sample_every = 250
    config.train.num_samples = 64
    config.train.optimizer.lr = 3e-3
    config.train.optimizer.warmup_steps = 50
    config.train.optimizer.weight_decay = 0.0
    config.train.checkpoint.every_steps = 250
    config.train.eval_every = 500  # the embedded captioning and VQA benchmark, 0- and 4-shot, logged as eval/...
    config.train.eval_tasks = ("embedded_cap", "embedded_vqa")
    config.train.eval_shots = (0, 4)
    config.init = init_defaults()
    config.eval = eval_defaults()  # each task's files: --config.eval.textcaps.annotations=... (mm1_jax.eval.datasets)
    config.eval.embedded_root = os.path.dirname(config.data.tokenizer)  # the embedded tasks read this dataset
    if arg == "sft":  # continue from the pre-trained tiny model: --config.init.checkpoint=WORKDIR/checkpoints
        config.train.steps = 300
        config.train.optimizer.name = "adafactor"
        config.train.optimizer.lr = 1e-3
    return config
