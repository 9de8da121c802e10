"""python -m mm1_jax.generate --config=configs/tiny.py --checkpoint=DIR --image=a.jpg [--image=b.jpg] [--prompt=...]
python -m mm1_jax.generate --config=configs/tiny.py --checkpoint=DIR --video=clip.mp4 --prompt="What happens?"

Captions your images (no --prompt) or answers a question about them, printing the answer as it is generated. The
checkpoint is an MM1 training checkpoint of the config's model or a converted mPLUG-Owl3 directory (with
`configs/owl3_eval.py:TOKENIZER_JSON`); without --checkpoint, a random initialisation. Images are prepared and the
prompt laid out exactly as the evaluation does (`mm1_jax.eval`: the model's image size, pixel statistics and
splitting; its chat template), so what you see here is what the benchmarks score. Put `<image>` in the prompt to
place the images inside the question (in order); otherwise they come first. A --video (a file or a frame folder) is
sampled as the evaluation samples a video question (`eval.video_frames`, else `data.video.frames`: MM1.5-Video's
24; `eval.video_sampling`) and its frames, whole images, come before any --image.
"""
from __future__ import annotations

import sys

from absl import flags
from ml_collections import config_flags

from mm1_jax import command_line

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Model/data config file (configs/X.py[:ARG]).")
flags.DEFINE_string("checkpoint", None, "Orbax checkpoint (or a trainer workdir), or a converted mPLUG-Owl3 directory.")
flags.DEFINE_multi_string("image", [], "An image file (repeat for several).")
flags.DEFINE_string("video", "", "A video file or frame folder, given as its sampled frames (before the images).")
flags.DEFINE_string("prompt", "", "A question or instruction; empty: caption the image(s).")
flags.DEFINE_integer("max_new_tokens", 32, "At most this many new tokens.")
flags.DEFINE_float("temperature", 0.0, "0: greedy; otherwise sample at this temperature.")
flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens (0: all).")
flags.DEFINE_float("top_p", 1.0, "Sample within the smallest set of tokens whose probability reaches p.")
flags.DEFINE_integer("seed", 0, "Sampling seed (and the random initialisation without --checkpoint).")


def _read_images(paths: list[str]) -> list[bytes]:
    """The files' bytes, each checked to decode before any model is built (one sentence when one does not)."""
    from mm1_jax.data import images  # pylint: disable=import-outside-toplevel

    out = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
            images.decode_image(data)
        except (OSError, ValueError) as e:
            raise ValueError(f"--image={path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}.") from None
        out.append(data)
    return out


def main(argv):
    del argv
    from mm1_jax.eval import prompts, results, tasks  # pylint: disable=import-outside-toplevel
    from mm1_jax.runtime import console  # pylint: disable=import-outside-toplevel
    from mm1_jax.runtime import generate as gen  # pylint: disable=import-outside-toplevel

    console.quiet_libraries()
    console.start_backends()
    try:
        pictures = _read_images(FLAGS.image)
        if FLAGS.video:  # decoded once here: a bad video is one sentence before any model is built
            from mm1_jax.data import video as video_lib  # pylint: disable=import-outside-toplevel

            frames, rule = tasks.video_settings(FLAGS.config)
            video_lib.read_video(FLAGS.video, frames, rule)
            pictures = video_lib.video_frames(FLAGS.video, frames, rule) + pictures
        if not pictures and not FLAGS.prompt:
            raise ValueError("give --image=FILE (to caption it), --video=FILE or --prompt=TEXT.")
        params, ctx = results.load(FLAGS.config, FLAGS.checkpoint, FLAGS.seed, batch_size=1)
        template = prompts.TEMPLATES[ctx.template]
        item = prompts.Item("cli", pictures, question=FLAGS.prompt)
        load = tasks.image_loader(ctx.image_size, ctx.norm, ctx.split)
        parts = prompts.item_parts(item, "vqa" if FLAGS.prompt else "caption", load, template=template)
        prompt = prompts.build_prompt([], parts, ctx.tok, ctx.k, max_tokens=ctx.max_tokens - FLAGS.max_new_tokens,
                                      max_images=ctx.max_images, image_shape=(ctx.image_size, ctx.image_size, 3),
                                      split=ctx.split, bos=template.bos)
    except ValueError as e:
        sys.exit(f"error: {e}")
    sampling = gen.Sampling(max_new_tokens=FLAGS.max_new_tokens, temperature=FLAGS.temperature, top_k=FLAGS.top_k,
                            top_p=FLAGS.top_p, seed=FLAGS.seed, stop_ids=tasks.stop_ids(ctx))
    ids, shown = [], ""
    for token, _ in gen.stream(ctx.model, params, gen.Request(prompt.tokens, prompt.images), sampling,
                               pad_id=ctx.tok.pad_id, **ctx.inputs):
        ids.append(token)
        text = ctx.tok.decode(ids, mark_images=False).strip()
        print(text[len(shown):] if text.startswith(shown) else "\n" + text, end="", flush=True)
        shown = text
    print(flush=True)


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    command_line.run(main)
