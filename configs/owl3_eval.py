"""Evaluating a converted mPLUG-Owl3 release with `mm1_jax.eval` (the model comes from the checkpoint directory).

    python -m mm1_jax.convert --src mPLUG-Owl3-7B-240728 --dst /ckpt/owl3_7b
    python -m mm1_jax.eval --config=configs/owl3_eval.py:mPLUG-Owl3-7B-240728/tokenizer.json \\
        --checkpoint=/ckpt/owl3_7b --tasks=mmbench_distractors --shots=0 \\
        --config.eval.mmbench_distractors.annotations=MMBench_DEV_EN.tsv \\
        --config.eval.mmbench_distractors.num_images=50
    python -m mm1_jax.generate --config=configs/owl3_eval.py:mPLUG-Owl3-7B-240728/tokenizer.json \\
        --checkpoint=/ckpt/owl3_7b --video=clip.mp4 --prompt="What happens in the video?"

get_config(arg): arg is the release's tokenizer.json. Prompts use Qwen2's ChatML (eval.template), one <|image|>
placeholder per image, laid out as the release's processor lays them out (`mm1_jax.eval.tasks.owl3_prompt`;
X-PLUG/mPLUG-Owl, the model's processing_mplugowl3.py and image_processing_mplugowl3.py):
- a prompt whose only image is a still image has it cut into the release's grid of crops and a global view, its
  placeholder replaced by the release's cut prompt ('Cut to 2 rows 3 columns with a global view' ...;
  `mm1_jax.data.owl3_images`), as the release's evaluation does for its single-image benchmarks (MMBench, POPE, the
  VQA tasks: evaluation/tasks/plans/all.yaml's cut_cfg). eval.owl3_cut=False keeps every image whole.
- prompts with several images keep them whole (the release's processor gets their cut prompts wrong, and its
  evaluation cuts no multi-image benchmark);
- a video's frames are never cut (the processor turns cutting off when it is given videos) and each takes one
  <|image|>, one after another, where the release's <|video|> stands (before the question).
A video question samples data.video.frames = 8 frames by rule 'owl3' (the segment centres of the release's
evaluation/tasks/task_define/video_utils.py `get_frame_indices(sample='middle')`, which base.py `_load_video` calls
with 8 frames by default, as NExT-QA's task does). The release's evaluation plan asks more of some benchmarks
(all.yaml: MVBench 16, LongVideoBench 64, Video-MME 128): set --config.eval.video_frames to match one. (The
README's own video example samples 1 frame per second, at most MAX_NUM_FRAMES=16, a chat demo, not the evaluation.)
"""
import ml_collections

from mm1_jax.eval.datasets import eval_defaults


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data = dict(tokenizer=arg or "gs://YOUR_BUCKET/mPLUG-Owl3-7B-240728/tokenizer.json",
                       seq_len=8192,  # the prompt's tokens; 400 images take 400 placeholders
                       split=dict(mode="none"),
                       video=dict(frames=8, sampling="owl3"))  # the release's evaluation (see above)
    config.eval = eval_defaults()
    config.eval.template = "chatml"
    config.eval.owl3_cut = True  # a prompt's only still image cut as the release cuts it (False: every image whole)
    config.eval.mmbench_distractors.answer_mode = "letter"  # MMBench answers by letter
    return config
