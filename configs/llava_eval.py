"""Evaluating a converted LLaVA release (LLaVA-NeXT-Interleave, LLaVA-OneVision, LLaVA-NeXT) with `mm1_jax.eval`.

    python -m mm1_jax.convert --src llava-interleave-qwen-7b-hf --dst /ckpt/llava_interleave_7b
    python -m mm1_jax.eval --config=configs/llava_eval.py:llava-interleave-qwen-7b-hf/tokenizer.json \\
        --checkpoint=/ckpt/llava_interleave_7b --tasks=mmbench_distractors --shots=0 \\
        --config.eval.mmbench_distractors.annotations=MMBench_DEV_EN.tsv \\
        --config.eval.mmbench_distractors.num_images=20

get_config(arg): arg is the release's tokenizer.json (its `<image>` is the model's image token). Prompts use the
release's chat template ('<|im_start|>user ' + images + '\\n' + text + '<|im_end|><|im_start|>assistant\\n'; set
eval.template=chatml for Qwen2's plain ChatML), one <image> per image expanded to the image's features (729 per
384 px SigLIP view for LLaVA-NeXT-Interleave), images preprocessed as the release's image processor does
(`mm1_jax.data.llava_images`: the llava-hf defaults of the model's style, or eval.image_processor = the release's
preprocessor_config.json; a Hugging Face directory given as --checkpoint uses its own). data.seq_len bounds the
expanded prompt: N images take about 730 * N tokens.
"""
import ml_collections

from mm1_jax.eval.datasets import eval_defaults

TOKENIZER = "gs://YOUR_BUCKET/llava-interleave-qwen-7b-hf/tokenizer.json"


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data = dict(tokenizer=arg or TOKENIZER,
                       seq_len=32768,  # Qwen1.5-7B's context; the prompt's tokens, image features included
                       split=dict(mode="none"))
    config.eval = eval_defaults()
    config.eval.mmbench_distractors.answer_mode = "letter"  # MMBench answers by letter
    return config
