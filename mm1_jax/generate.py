"""python -m mm1_jax.generate --config=configs/tiny.py --checkpoint=DIR --image=a.jpg [--image=b.jpg] [--prompt=...]
python -m mm1_jax.generate --config=configs/tiny.py --checkpoint=DIR --video=clip.mp4 --prompt="What happens?"

Captions your images (no --prompt) or answers a question about them, printing the answer as it is generated. The
checkpoint is an MM1 training checkpoint of the config's model or a converted mPLUG-Owl3 directory (with
`configs/owl3_eval.py:TOKENIZER_JSON`); without --checkpoint, a random initialisation. Images are prepared and the
prompt laid out exactly as the evaluation does (`mm1_jax.eval.tasks.layout_prompt`: the model's image size, pixel
statistics and splitting; its chat template; a converted mPLUG-Owl3's one image cut into the release's crops unless
`--config.eval.owl3_cut=false`), so what you see here is what the benchmarks score. Put `<image>` in the prompt to
place the images inside the question (in order); otherwise they come first. A --video (a file or a frame folder) is
sampled as the evaluation samples a video question (`eval.video_frames`, else `data.video.frames`: MM1.5-Video's
24, mPLUG-Owl3's 8 in `configs/owl3_eval.py`; `eval.video_sampling`) and its frames, whole images, come before any
--image (for mPLUG-Owl3 one <|image|> each, as its release expands <|video|>).

Referring and grounding (MM1.5-UI, Ferret): `--box=x1,y1,x2,y2` (pixels of the first image; repeat for several) is
written into the prompt in the model's coordinate format (`eval.box_format`: 'ferret' is Ferret's [x1, y1, x2, y2]
on the 0-999 grid of the whole image, `mm1_jax.data.coordinates`), at each `<box>` of the prompt in order, or after
it when it has none; coordinates typed into the prompt are checked in that format (one sentence when a box is off the
grid, inverted or not 2 or 4 integers). The boxes of the answer are printed back in pixels of the first image.

`main(argv)` runs the command in this process (its flags parsed from `argv` into their own `FlagValues`, since the
package's commands share flag names).
"""
from __future__ import annotations

import sys

from absl import flags
from ml_collections import config_flags

from mm1_jax import command_line


def define_flags(fv: flags.FlagValues, argv: list[str] | None = None) -> flags.FlagValues:
    """The command's flags, defined in `fv` (`argv`: the command line, for the `--config.a.b=v` overrides)."""
    config_flags.DEFINE_config_file("config", None, "Model/data config file (configs/X.py[:ARG]).", flag_values=fv,
                                    sys_argv=argv)
    flags.DEFINE_string("checkpoint", None, "Orbax checkpoint (or a trainer workdir), or a converted mPLUG-Owl3 "
                        "directory.", flag_values=fv)
    flags.DEFINE_multi_string("image", [], "An image file (repeat for several).", flag_values=fv)
    flags.DEFINE_string("video", "", "A video file or frame folder, given as its sampled frames (before the images).",
                        flag_values=fv)
    flags.DEFINE_string("prompt", "", "A question or instruction; empty: caption the image(s).", flag_values=fv)
    flags.DEFINE_multi_string("box", [], "A region x1,y1,x2,y2 in pixels of the first image, written into the prompt "
                              "(at its <box>, in order) in the model's coordinate format (eval.box_format).",
                              flag_values=fv)
    flags.DEFINE_integer("max_new_tokens", 32, "At most this many new tokens.", flag_values=fv)
    flags.DEFINE_float("temperature", 0.0, "0: greedy; otherwise sample at this temperature.", flag_values=fv)
    flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens (0: all).", flag_values=fv)
    flags.DEFINE_float("top_p", 1.0, "Sample within the smallest set of tokens whose probability reaches p.",
                       flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Sampling seed (and the random initialisation without --checkpoint).",
                         flag_values=fv)
    return fv


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


def _boxes(values: list[str], size: tuple[int, int] | None) -> list[tuple[float, ...]]:
    """--box values as pixel boxes of the first image (`size`: its width, height), each checked to lie inside it."""
    out = []
    for value in values:
        try:
            box = tuple(float(v) for v in value.split(","))
        except ValueError:
            box = ()
        if len(box) != 4:
            raise ValueError(f"--box={value} is not four numbers x1,y1,x2,y2 (pixels of the first image).")
        if size is None:
            raise ValueError(f"--box={value} needs an image to refer to: give --image or --video.")
        w, h = size
        if not (0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h):
            raise ValueError(f"--box={value} is not a box inside the first image ({w}x{h} pixels, x1 < x2, y1 < y2).")
        out.append(box)
    return out


def box_prompt(prompt: str, boxes: list[tuple[float, ...]], size: tuple[int, int] | None, fmt: str) -> str:
    """The prompt with each box written in format `fmt` at its <box> (in order; after the prompt when it has none
    left), its typed coordinates checked when `fmt` is Ferret's (`coordinates.check_prompt`)."""
    from mm1_jax.data import coordinates  # pylint: disable=import-outside-toplevel
    from mm1_jax.eval import metrics  # pylint: disable=import-outside-toplevel

    if fmt == "ferret":
        coordinates.check_prompt(prompt)
    for box in boxes:
        text = metrics.box_to_text(box, size[0], size[1], fmt)
        prompt = prompt.replace("<box>", text, 1) if "<box>" in prompt else f"{prompt} {text}".strip()
    return prompt


def main(argv: list[str]) -> None:
    """The command with the command line `argv` (argv[0] the program), in this process."""
    fv = define_flags(flags.FlagValues(), argv)
    try:
        fv(argv)
    except (AttributeError, KeyError) as e:  # a --config override naming a field the config does not have
        sys.exit(f"error: {command_line.unknown_field(argv, e)}")
    except flags.Error as e:
        sys.exit(f"error: {e}")
    if fv.config is None:
        sys.exit("error: --config is required (configs/X.py[:ARG]).")
    run(fv)


def run(fv: flags.FlagValues) -> None:
    """Generate with the parsed flags `fv`, printing the answer as it comes."""
    from mm1_jax.eval import prompts, results, tasks  # pylint: disable=import-outside-toplevel
    from mm1_jax.runtime import console  # pylint: disable=import-outside-toplevel
    from mm1_jax.runtime import generate as gen  # pylint: disable=import-outside-toplevel

    console.quiet_libraries()
    console.start_backends()
    try:
        pictures = _read_images(fv.image)
        if fv.video:  # decoded once here: a bad video is one sentence before any model is built
            from mm1_jax.data import video as video_lib  # pylint: disable=import-outside-toplevel

            frames, rule = tasks.video_settings(fv.config)
            video_lib.read_video(fv.video, frames, rule)
            pictures = video_lib.video_frames(fv.video, frames, rule) + pictures
        if not pictures and not fv.prompt:
            raise ValueError("give --image=FILE (to caption it), --video=FILE or --prompt=TEXT.")
        size = _first_size(pictures)
        fmt = (fv.config.get("eval") or {}).get("box_format") or "mm1_jax"
        question = box_prompt(fv.prompt, _boxes(fv.box, size), size, fmt)
        params, ctx = results.load(fv.config, fv.checkpoint, fv.seed, batch_size=1)
        template = prompts.TEMPLATES[ctx.template]
        item = prompts.Item("cli", pictures, question=question)
        parts = prompts.item_parts(item, "vqa" if question else "caption", tasks.prompt_loader(ctx),
                                   template=template)
        prompt = tasks.layout_prompt(ctx, [], parts, ctx.max_tokens - fv.max_new_tokens, bos=template.bos)
        request = tasks.request(ctx, prompt)
    except ValueError as e:
        sys.exit(f"error: {e}")
    sampling = gen.Sampling(max_new_tokens=fv.max_new_tokens, temperature=fv.temperature, top_k=fv.top_k,
                            top_p=fv.top_p, seed=fv.seed, stop_ids=tasks.stop_ids(ctx))
    ids, shown = [], ""
    for token, _ in gen.stream(ctx.model, params, request, sampling, pad_id=ctx.tok.pad_id, **ctx.inputs):
        ids.append(token)
        text = ctx.tok.decode(ids, mark_images=False).strip()
        print(text[len(shown):] if text.startswith(shown) else "\n" + text, end="", flush=True)
        shown = text
    print(flush=True)
    if size is not None and (fv.box or fmt == "ferret"):
        _print_boxes(shown, size, fmt)


def _first_size(pictures: list) -> tuple[int, int] | None:
    """(width, height) of the first image (bytes) or video frame, None without one."""
    from mm1_jax.data import images  # pylint: disable=import-outside-toplevel
    from mm1_jax.data import video as video_lib  # pylint: disable=import-outside-toplevel

    if not pictures:
        return None
    first = pictures[0]
    if isinstance(first, video_lib.Frame):
        h, w = video_lib.frame_pixels(first).shape[:2]
        return w, h
    return images.decode_image(first).size


def _print_boxes(answer: str, size: tuple[int, int], fmt: str) -> None:
    """The answer's boxes (and Ferret's points) in pixels of the first image, one line each."""
    from mm1_jax.data import coordinates  # pylint: disable=import-outside-toplevel
    from mm1_jax.eval import metrics  # pylint: disable=import-outside-toplevel

    w, h = size
    if fmt == "ferret":
        found = [("box", b) for b in coordinates.parse_boxes(answer, w, h)]
        found += [("point", p) for p in coordinates.parse_points(answer, w, h)]
    else:
        box = metrics.box_from_text(answer, w, h, fmt)
        found = [("box", box)] if box is not None else []
    for kind, values in found:
        print(f"{kind} in pixels of the first image ({w}x{h}): [{', '.join(f'{v:.1f}' for v in values)}]")


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    flags.mark_flag_as_required("config")
    command_line.run(lambda argv: run(flags.FLAGS))
