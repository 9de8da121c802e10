"""Evaluating a converted mPLUG-Owl3 release with `mm1_jax.eval` (the model comes from the checkpoint directory).

    python -m mm1_jax.convert --src mPLUG-Owl3-7B-240728 --dst /ckpt/owl3_7b
    python -m mm1_jax.eval --config=configs/owl3_eval.py:mPLUG-Owl3-7B-240728/tokenizer.json \\
        --checkpoint=/ckpt/owl3_7b --tasks=mmbench_distractors --shots=0 \\
        --config.eval.mmbench_distractors.annotations=MMBench_DEV_EN.tsv \\
        --config.eval.mmbench_distractors.num_images=50

get_config(arg): arg is the release's tokenizer.json. Prompts use Qwen2's ChatML (eval.template), one <|image|>
placeholder per whole image (the release's cutting of large images into crops is not applied).
"""
import ml_collections

from mm1_jax.eval.datasets import eval_defaults


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data = dict(tokenizer=arg or "gs://YOUR_BUCKET/mPLUG-Owl3-7B-240728/tokenizer.json",
                       seq_len=8192,  # the prompt's tokens; 400 images take 400 placeholders
                       split=dict(mode="none"))
    config.eval = eval_defaults()
    config.eval.template = "chatml"
    config.eval.mmbench_distractors.answer_mode = "letter"  # MMBench answers by letter
    return config
