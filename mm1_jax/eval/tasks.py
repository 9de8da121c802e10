"""Running evaluation tasks: `run_tasks`, the entry point the trainer and the CLI share, and `evaluate`.

The tasks themselves (readers, formats, metrics, config sections) are `mm1_jax.eval.datasets`. `evaluate` runs one
task at one shot count and returns a report: scores, predictions, skipped items (records the reader refused,
missing or undecodable images, prompts that cannot fit) and how many prompts lost demonstrations to the context.
A task whose skipped items pass `eval.max_skipped` of its items stops before the model runs (`stopped` says why).
`run_tasks` flattens the scores to {"task/Nshot/metric": value}; groups (textcore) add their mean.

The models: an MM1 (`Context.from_config`: K slot tokens per image, or one on the hyper-attention route), a
converted mPLUG-Owl3 (`Context.for_owl3`: one <|image|> placeholder per image, a prompt's only still image cut into
the release's crops and global view, a video's frames whole: `owl3_prompt`) or a converted LLaVA-OneVision /
LLaVA-NeXT / LLaVA (`Context.for_llava`: one <image> per image, expanded to the image's features as the release's
processor expands it, images preprocessed as its image processor does, `data.llava_images`).

    scores = run_tasks(model, params, config, ["embedded_cap", "embedded_vqa"], [0, 4])
"""
from __future__ import annotations

import dataclasses
import io
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from mm1_jax.data import examples as examples_lib
from mm1_jax.data import images as images_lib
from mm1_jax.data import llava_images, owl3_images, synthetic
from mm1_jax.data import sources as sources_lib
from mm1_jax.data import video as video_lib
from mm1_jax.data.tokenizer import Tokenizer, load_tokenizer
from mm1_jax.eval import datasets, embedded, metrics, suites
from mm1_jax.eval import judge as judge_lib
from mm1_jax.eval.datasets import TASKS, Task
from mm1_jax.eval.prompts import TEMPLATES, Item, Prompt, Template, build_prompt, draw_demos, item_parts
from mm1_jax.eval.scorers import mmbench, refexp, text_rich
from mm1_jax.models import llava as llava_model
from mm1_jax.models import vit
from mm1_jax.models.inputs import input_spec
from mm1_jax.runtime import generate as gen

__all__ = ["TASKS", "Context", "Task", "eval_split", "evaluate", "image_loader", "layout_prompt", "load_task",
           "prompt_loader", "read_tasks", "request", "run_tasks"]


def _eval_cfg(config: ml_collections.ConfigDict) -> Any:
    return config.get("eval") if config.get("eval") is not None else datasets.eval_defaults()


def _embedded_root(config) -> str:
    """config.eval.embedded_root (the dataset a run trained on, so VQA's held-out split matches), else the default;
    the config's embedded dataset is generated first if it is missing."""
    if config.get("data") is not None:
        synthetic.ensure_data(config.data)
    return str(_eval_cfg(config).get("embedded_root") or "") or synthetic.ensure_generated()


_EMBEDDED_LOADERS = {
    "embedded_cap": embedded.captioning, "embedded_ocr": embedded.ocr, "embedded_grounding": embedded.grounding,
    "embedded_multi": embedded.multi_image, "embedded_mc": embedded.multiple_choice,
    "embedded_text": embedded.text_choice, "embedded_fewshot": embedded.fewshot, "embedded_docvqa": embedded.docvqa,
    "embedded_count": embedded.counting,
}


def load_task(task: Task, config: ml_collections.ConfigDict, limit: int
              ) -> tuple[list[Item], list[Item], list[dict]]:
    """(the first `limit` items, the support items demonstrations are drawn from, records the reader skipped).

    Annotation files have one split: demonstrations for item i come from the others (never itself)."""
    if task.name == "embedded_vqa":
        root = _embedded_root(config)
        return embedded.vqa(root, limit, "eval"), embedded.vqa(root, 500, "support"), []
    if task.kind == "embedded":
        fn = _EMBEDDED_LOADERS[task.name]
        return fn(limit, "eval"), fn(200, "support"), []
    eval_cfg = _eval_cfg(config)
    values = datasets.task_config(task, eval_cfg)  # the readers name an unset or missing file themselves
    items, skipped = task.reader(task.name, **{f: values[f] for f in task.files})
    ask, convention = datasets.KINDS[task.kind].question, str(eval_cfg.get("convention") or "official")
    for item in items if ask else ():  # the benchmark's own prompt text (MMMU's options, RealWorldQA's as released)
        item.question = ask(item, convention)
    frames, rule = video_settings(config)
    for item in items:  # a video question: its frames (decoded when its prompt is built) before its other images
        if item.meta.get("video"):
            item.images = video_lib.video_frames(item.meta["video"], frames, rule,
                                                 video_lib.clip_of(item.meta)) + list(item.images)
    suffix = datasets.POST_PROMPTS.get(str(eval_cfg.get("convention") or "official"), {}).get(task.kind, "")
    for item in items if suffix else ():  # the harness's instruction after each question, demonstrations' too
        item.question += suffix
    if task.fmt == "grounding":
        fmt = str(eval_cfg.get("box_format") or "mm1_jax")
        for item in items:
            m = item.meta
            item.answers = [metrics.box_to_text(m["box"], m["width"], m["height"], fmt)]
            item.question = (refexp.ferret_question(item.question) if fmt == "ferret" else
                             metrics.BOX_FORMATS[fmt]["question"].format(item.question))
    return items[:limit], items, skipped


def video_settings(config: ml_collections.ConfigDict) -> tuple[int, str]:
    """(frames, sampling rule) of a video question: eval.video_frames / eval.video_sampling when set, else the data
    config's (data.video: MM1.5-Video's 24 uniform frames by default; mPLUG-Owl3's release samples 8, rule owl3)."""
    e, data = _eval_cfg(config), (config.get("data") or {}).get("video") or {}
    return (int(e.get("video_frames") or data.get("frames") or 24),
            str(e.get("video_sampling") or data.get("sampling") or "uniform"))


def image_loader(size: int, norm: str, split: dict | None = None) -> Callable[[Any], Any]:
    """Reference (path, bytes or a ready array) -> uint8 pixels [S, S, 3] (the model normalises them with `norm`), or
    with `split` (a `data.split`) the image's split entries as training lays them out, the canvas padded with
    `norm`'s mean colour; OSError / ValueError when unreadable."""

    def load(ref: Any) -> Any:
        if isinstance(ref, np.ndarray):
            return ref
        if isinstance(ref, video_lib.Frame):  # a video question's frame: whole, never split (MM1.5-Video)
            return images_lib.whole_image(Image.fromarray(video_lib.frame_pixels(ref)), size)
        try:
            img = images_lib.decode_image(ref if isinstance(ref, bytes) else sources_lib.read_image_ref(ref, ".", ""))
        except (OSError, ValueError) as e:
            where = "its image bytes" if isinstance(ref, bytes) else f"image file {ref}"
            raise ValueError(f"{where}: {e}") from None
        if split is not None:
            return examples_lib.split_entries(img, split, size, norm)
        return images_lib.whole_image(img, size)

    return load


def eval_split(config: ml_collections.ConfigDict) -> dict | None:
    """How evaluation splits images: as `data.split` (a split-trained model is scored with its crops), with
    `eval.split_mode` / `eval.split_n_min` / `eval.split_n_max` overriding when set (MM1.5 infers at (4, 16));
    None when images stay whole."""
    e = config.get("eval") or {}
    split = dict(config.data.split, mode=e.get("split_mode") or config.data.split.mode)
    if split["mode"] == "none":
        return None
    split.update({k: e[f"split_{k}"] for k in ("n_min", "n_max") if e.get(f"split_{k}")})
    return split


@dataclasses.dataclass(frozen=True)
class LlavaInputs:
    """What a LLaVA context needs beyond the tokenizer: the model config (`models.llava.plan_images` decides each
    image's tiles and tokens from it) and the release's image processor (`data.llava_images`)."""

    config: Any
    processor: llava_images.ImageProcessor


@dataclasses.dataclass(frozen=True)
class Owl3Inputs:
    """What an mPLUG-Owl3 context needs beyond the tokenizer: whether a prompt's only still image is cut as the
    release cuts it (`eval.owl3_cut`; `owl3_prompt`)."""

    cut: bool = True


@dataclasses.dataclass
class Context:
    """What prompts, generation and scoring need about the model, and the evaluation settings."""

    model: Any
    tok: Tokenizer
    k: int  # tokens per image in the prompt (K slots; 1 placeholder on the hyper route and for Owl3)
    image_size: int
    norm: str
    max_tokens: int
    max_images: int
    batch_size: int = 16
    split: dict | None = None  # `eval_split`: images split as in training, or whole
    caption_tokenizer: str = "auto"  # CIDEr's tokenisation (`metrics.tokenize_captions`)
    image_token_id: int | None = None  # Owl3: the <|image|> placeholder (images passed flat); None: MM1 slots
    llava: LlavaInputs | None = None  # a LLaVA model: its config and image processor (image_token_id its <image>)
    owl3: Owl3Inputs | None = None  # an mPLUG-Owl3 model: how its images are laid out (image_token_id its <|image|>)
    template: str = "mm1"
    box_format: str = "mm1_jax"
    convention: str = "official"  # eval.convention: the official scorers, or a harness's (datasets.CONVENTIONS)
    max_skipped: float = 0.05
    max_batch_images: int = 256  # prompts per batch shrink so a batch holds at most this many images
    eval_cfg: Any = None
    _generators: dict = dataclasses.field(default_factory=dict)
    _judge: list = dataclasses.field(default_factory=list)  # [the judge or None], built on first use

    @classmethod
    def from_config(cls, model: Any, config: ml_collections.ConfigDict, batch_size: int = 16) -> Context:
        """An MM1 model (`models.build_model(config.model)`)."""
        spec = input_spec(config.model)
        synthetic.ensure_data(config.data)  # the embedded dataset's tokenizer, written on first use
        return cls._with_eval(model, load_tokenizer(config.data.tokenizer), spec.tokens_per_image, spec.image_size,
                              spec.image_norm, int(config.data.seq_len), spec.max_images, batch_size, config)

    @classmethod
    def for_owl3(cls, module: Any, owl3_config: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                 batch_size: int = 16, max_images: int = 512) -> Context:
        """A converted mPLUG-Owl3 (`pretrained.load(dir).module` with its config): prompts in ChatML by default,
        one <|image|> placeholder per image, a prompt's only still image cut into crops and a global view with the
        release's cut prompt unless `config.eval.owl3_cut` is False (`owl3_prompt`; a video's frames are never cut),
        `config.data.tokenizer` = the release's tokenizer.json, `config.data.seq_len` the context to fill."""
        tok = load_tokenizer(config.data.tokenizer)
        token_id = owl3_config.get("image_token_id")
        if token_id is not None and int(token_id) != tok.image_id:
            raise ValueError(f"the checkpoint's image_token_id {token_id} is not the tokenizer's <|image|> id "
                             f"{tok.image_id} ({config.data.tokenizer}).")
        cut = _eval_cfg(config).get("owl3_cut", True)
        if not isinstance(cut, bool):
            raise ValueError(f"eval.owl3_cut={cut!r} must be True (cut a prompt's only still image as the release "
                             "does) or False (every image whole).")
        enc = owl3_config.encoder
        norm = vit.STYLES[enc.style]["image_norm"]
        ctx = cls._with_eval(module, tok, 1, int(enc.image_size), norm, int(config.data.seq_len), max_images,
                             batch_size, config, template="chatml", image_token_id=tok.image_id,
                             owl3=Owl3Inputs(cut))
        ctx.split = None
        return ctx

    @classmethod
    def for_llava(cls, loaded: Any, config: ml_collections.ConfigDict, batch_size: int = 16, max_images: int = 512,
                  processor: llava_images.ImageProcessor | None = None) -> Context:
        """A converted (or Hugging Face) LLaVA-OneVision / LLaVA-NeXT / LLaVA (`pretrained.load(dir)`, a
        `LoadedLlava`). Prompts: the release's chat template by default (`LLAVA_TEMPLATE`; eval.template=chatml
        gives Qwen2's plain ChatML), one `<image>` per image, expanded to each image's feature count once the prompt
        is laid out (demonstrations are dropped until the expanded prompt fits `config.data.seq_len`); images as
        the release's image processor makes them (`processor`, else `config.eval.image_processor` = its
        preprocessor_config.json, else the llava-hf defaults of the model's style: `ImageProcessor.for_model`).
        `config.data.tokenizer` is the release's tokenizer.json; its `<image>` must be the model's image token."""
        tok = load_tokenizer(config.data.tokenizer)
        cfg = loaded.config
        token_id = int(cfg.image_token_id)
        if tok.image_id != token_id:
            raise ValueError(f"the checkpoint's image_token_id {token_id} is not the tokenizer's <image> id "
                             f"{tok.image_id} ({config.data.tokenizer}).")
        if processor is None:
            path = str((config.get("eval") or {}).get("image_processor") or "")
            processor = llava_images.ImageProcessor.from_hf(path, cfg) if path else \
                llava_images.ImageProcessor.for_model(cfg)
        enc = cfg.encoder
        norm = vit.STYLES[enc.style]["image_norm"]
        ctx = cls._with_eval(loaded.module, tok, 1, int(enc.image_size), norm, int(config.data.seq_len), max_images,
                             batch_size, config, template="llava", image_token_id=token_id,
                             llava=LlavaInputs(cfg, processor))
        ctx.split = None
        return ctx

    @classmethod
    def _with_eval(cls, model, tok, k, size, norm, max_tokens, max_images, batch_size, config, template="mm1",
                   **kw) -> Context:
        e = _eval_cfg(config)
        return cls(model, tok, k, size, norm, max_tokens, max_images, batch_size, eval_split(config),
                   str(e.get("caption_tokenizer") or "auto"), template=str(e.get("template") or template),
                   box_format=str(e.get("box_format") or "mm1_jax"), convention=str(e.get("convention") or "official"),
                   max_skipped=float(e.get("max_skipped", 0.05)), eval_cfg=e, **kw)

    @property
    def inputs(self) -> dict[str, int]:
        """The image layout's arguments to `runtime.generate` (slots, placeholders or LLaVA's tiles)."""
        if self.llava is not None:
            return {"inputs": gen.LlavaImages(int(self.image_token_id))}
        if self.image_token_id is not None:
            return dict(image_token_id=self.image_token_id)
        return dict(tokens_per_image=self.k, image_id=self.tok.image_id)

    def judge(self) -> judge_lib.Judge | None:
        """The model judge config.eval.judge describes (built once, when a judged task first needs it), or None."""
        if not self._judge:
            self._judge.append(judge_lib.build_judge((self.eval_cfg or {}).get("judge")))
        return self._judge[0]

    def generator(self, batch_size: int) -> gen.Generator:
        if batch_size not in self._generators:
            self._generators[batch_size] = gen.Generator(self.model, pad_id=self.tok.pad_id, batch_size=batch_size,
                                                         **self.inputs)
        return self._generators[batch_size]


def stop_ids(ctx: Context) -> tuple[int, ...]:
    """Tokens that end an answer: <eos>, <image>, '.', and <|im_end|> for ChatML (and LLaVA's chat template)."""
    tok = ctx.tok
    ids = [tok.eos_id, tok.image_id]
    for text in (".", "<|im_end|>" if ctx.template in ("chatml", "llava") else None):
        encoded = tok.encode(text) if text else []
        ids += encoded if len(encoded) == 1 else []
    return tuple(ids)


# --------------------------------------------------------------------------------------------------------------------
# LLaVA: the release's chat template, images kept as references until a batch needs their tiles, expanded prompts
# --------------------------------------------------------------------------------------------------------------------
# The llava-hf releases' chat template (chat_template.json of LLaVA-OneVision and LLaVA-NeXT-Interleave): a user turn
# is '<|im_start|>user ' + its images + '\n' + its text + '<|im_end|>', an answer '<|im_start|>assistant \n' + text +
# '<|im_end|>', the generation prompt '<|im_start|>assistant\n'; no system turn, no <bos>. `llava_parts` adds the
# '\n' before the question and the demonstrations' own assistant header to what `item_parts` lays out.
LLAVA_TEMPLATE = Template("<|im_start|>user ", "<|im_end|><|im_start|>assistant\n", ("text", "<|im_end|>"), bos=False)
LLAVA_ANSWER_HEADER = "<|im_end|><|im_start|>assistant \n"


def _template(ctx: Context) -> Template:
    return LLAVA_TEMPLATE if ctx.template == "llava" else TEMPLATES[ctx.template]


@dataclasses.dataclass(frozen=True)
class LlavaImage:
    """One image of a LLaVA prompt: its reference (bytes, a path or a uint8 array) and (height, width). Decoded
    again when a batch needs its tiles, so that a task's prompts hold no pixels."""

    ref: Any
    size: tuple[int, int]

    def decode(self) -> Any:
        """The image (PIL, or the array as given), as transformers' processor takes it."""
        if isinstance(self.ref, np.ndarray):
            return self.ref
        data = self.ref if isinstance(self.ref, bytes) else sources_lib.read_image_ref(self.ref, ".", "")
        img = Image.open(io.BytesIO(data))
        img.load()
        return img


def llava_loader() -> Callable[[Any], LlavaImage]:
    """Reference -> `LlavaImage` (the image decoded once here, so that an unreadable one is skipped with its item;
    sizes are remembered per reference); OSError / ValueError when unreadable."""
    sizes: dict = {}

    def load(ref: Any) -> LlavaImage:
        if isinstance(ref, np.ndarray):
            pixels = llava_images.to_rgb(ref)
            return LlavaImage(pixels, tuple(int(v) for v in pixels.shape[:2]))
        key = ref if isinstance(ref, (bytes, str)) else None
        if key is None or key not in sizes:
            try:
                img = LlavaImage(ref, (0, 0)).decode()
                size = (int(img.height), int(img.width))
                if size[0] < 1 or size[1] < 1:
                    raise ValueError(f"the image is {size[1]}x{size[0]} pixels")
            except (OSError, ValueError, KeyError) as e:
                where = "its image bytes" if isinstance(ref, bytes) else f"image file {str(ref)[:120]}"
                raise ValueError(f"{where}: {e}") from None
            if key is None:
                return LlavaImage(ref, size)
            sizes[key] = size
        return LlavaImage(ref, sizes[key])

    return load


def llava_parts(item: Item, fmt: str, load: Callable, answer: str | None = None, question: str | None = None,
                template: Template = LLAVA_TEMPLATE) -> list[tuple]:
    """`item_parts` in the release's chat template (`LLAVA_TEMPLATE`): a newline before the user turn's first text
    (after its images, as the template puts them), a demonstration's answer after '<|im_start|>assistant ' and a
    newline. Other templates (eval.template=chatml) lay out as `item_parts` does."""
    parts = item_parts(item, fmt, load, answer=answer, question=question, template=template)
    if template is not LLAVA_TEMPLATE or not parts or parts[0] != ("text", template.user):
        return parts
    end = parts.index(("text", template.assistant), 1)
    for i in range(1, end):
        if parts[i][0] == "text":
            parts[i] = ("text", "\n" + parts[i][1])
            break
    if answer is not None:
        parts[end] = ("text", LLAVA_ANSWER_HEADER)
    return parts


@dataclasses.dataclass
class LlavaPrompt(Prompt):
    """A LLaVA prompt: `tokens` with each image's <image> expanded to its features, `images` its `LlavaImage`s,
    `plans` their `models.llava.ImagePlan`s (decided for this prompt's image count, as the processor decides)."""

    plans: tuple = ()


def llava_prompt(ctx: Context, demos: Sequence[list[tuple]], query: list[tuple], max_tokens: int,
                 bos: bool = False) -> LlavaPrompt:
    """`build_prompt` with one <image> per image, then each image's token repeated `plan.tokens` times; while the
    expanded prompt passes `max_tokens`, laid out again in a budget smaller by the excess, so that demonstrations
    drop (the earliest first) until it fits, then the query loses text or the item is skipped (ValueError)."""
    stand_in = np.zeros((1, 1, 3), np.uint8)  # build_prompt stacks images: the references stay out of it
    shown = [[("image", stand_in) if p[0] == "image" else p for p in parts] for parts in list(demos) + [query]]
    budget, image_id, expanded = max_tokens, int(ctx.image_token_id), 0
    while True:
        try:
            prompt = build_prompt(shown[:-1], shown[-1], ctx.tok, 1, max_tokens=budget, max_images=ctx.max_images,
                                  image_shape=(1, 1, 3), bos=bos)
        except ValueError as e:
            if not expanded:
                raise
            raise ValueError(f"the query alone does not fit {max_tokens} tokens once its images' <image> tokens are "
                             f"expanded (the shortest layout tried: {expanded} tokens); {e}") from None
        kept = list(demos[prompt.dropped_demos:]) + [query]
        images = tuple(p[1] for parts in kept for p in parts if p[0] == "image")
        plans = llava_model.plan_images(ctx.llava.config, [im.size for im in images],
                                        batch_num_images=[len(images)]) if images else ()
        marks = np.flatnonzero(prompt.tokens == image_id)
        if len(marks) != len(images):
            raise ValueError(f"the prompt holds {len(marks)} <image> tokens for {len(images)} images (its text "
                             "names <image> itself?)")
        repeats = np.ones(len(prompt.tokens), np.int64)
        repeats[marks] = [p.tokens for p in plans]
        tokens = np.repeat(prompt.tokens, repeats)
        expanded = len(tokens)
        if len(tokens) <= max_tokens:
            return LlavaPrompt(tokens.astype(np.int32), images, prompt.dropped_demos, prompt.cut_query_tokens, plans)
        budget -= len(tokens) - max_tokens


# --------------------------------------------------------------------------------------------------------------------
# mPLUG-Owl3: a prompt's only still image cut as the release cuts it, images kept as references until a batch needs them
# --------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Owl3Image:
    """One image of an mPLUG-Owl3 prompt. A still image keeps its reference (bytes or a path) and (width, height),
    and is decoded again when a batch needs its pixels, so that a task's prompts hold none; a video's frame (and an
    array given as pixels) holds its whole-image pixels and is never cut."""

    ref: Any = None
    size: tuple[int, int] = (0, 0)
    pixels: np.ndarray | None = None

    def entries(self, image_size: int, cut: bool) -> np.ndarray:
        """uint8 [n, S, S, 3]: the release's crops (row-major) then its global view when `cut`, else the whole image
        (`data.owl3_images.process_image`); ready pixels as given."""
        if self.pixels is not None:
            return self.pixels[None]
        data = self.ref if isinstance(self.ref, bytes) else sources_lib.read_image_ref(self.ref, ".", "")
        return owl3_images.process_image(images_lib.decode_image(data), image_size, cut)[0]


def owl3_loader(size: int) -> Callable[[Any], Owl3Image]:
    """Reference -> `Owl3Image`: a still image decoded once here (an unreadable one is skipped with its item; sizes
    are remembered per reference), a video's `Frame` as its whole image (size x size, as the release's processor
    resizes an uncut image: image_processing_mplugowl3.py `resize_global`); OSError / ValueError when unreadable."""
    sizes: dict = {}

    def load(ref: Any) -> Owl3Image:
        if isinstance(ref, np.ndarray):
            return Owl3Image(pixels=ref)
        if isinstance(ref, video_lib.Frame):
            return Owl3Image(pixels=images_lib.whole_image(Image.fromarray(video_lib.frame_pixels(ref)), size))
        key = ref if isinstance(ref, (bytes, str)) else None
        if key is None or key not in sizes:
            try:
                img = images_lib.decode_image(ref if isinstance(ref, bytes) else
                                              sources_lib.read_image_ref(ref, ".", ""))
            except (OSError, ValueError) as e:
                where = "its image bytes" if isinstance(ref, bytes) else f"image file {str(ref)[:120]}"
                raise ValueError(f"{where}: {e}") from None
            if key is None:
                return Owl3Image(ref, img.size)
            sizes[key] = img.size
        return Owl3Image(ref, sizes[key])

    return load


@dataclasses.dataclass
class Owl3Prompt(Prompt):
    """An mPLUG-Owl3 prompt: `images` its (Owl3Image, entry) pairs in placeholder order, the entry indexing the
    image's `entries` (cut when `cut`)."""

    cut: bool = False


def owl3_prompt(ctx: Context, demos: Sequence[list[tuple]], query: list[tuple], max_tokens: int,
                bos: bool = False, start: str = "") -> Owl3Prompt:
    """`build_prompt` with one <|image|> per image (`owl3_loader`'s images). When the prompt shows one image, a still
    image, and `ctx.owl3.cut` (eval.owl3_cut), it is cut as the release cuts it (`owl3_images.cuts_prompt`): its
    placeholder becomes the release's cut prompt (processing_mplugowl3.py; 'Cut to h rows w columns with a global
    view', a `subimg(i,j)<|image|>` per crop, `global_view<|image|>`), the text between placeholders one piece, and
    its placeholders take its crops then its global view. A video's frames stay whole, one placeholder each, one
    after another (the release replaces <|video|> by a <|image|> per frame and turns cutting off for videos)."""
    stand_in = np.zeros((1, 1, 3), np.uint8)  # build_prompt stacks images: the references stay out of it
    groups = list(demos) + [query]
    shown = [p[1] for parts in groups for p in parts if p[0] == "image"]
    video = any(im.pixels is not None for im in shown)  # frames (and given pixels): not a still image to cut
    cut = bool(ctx.owl3 is not None and ctx.owl3.cut and owl3_images.cuts_prompt(len(shown), video))
    laid, views = [], []
    for parts in groups:
        out, mine = [], []
        for part in parts:
            if part[0] != "image":
                out.append(part)
                continue
            if not cut:
                out.append(("image", stand_in))
                mine.append((part[1], 0))
                continue
            rows, cols = owl3_images.choose_cut_grid(*part[1].size, size=ctx.image_size)
            pieces = owl3_images.cut_prompt(rows, cols).split(owl3_images.IMAGE_TOKEN)
            for j, piece in enumerate(pieces[:-1]):  # the text before each placeholder, then the placeholder
                out += ([("text", piece)] if piece else []) + [("image", stand_in)]
                mine.append((part[1], j))
            out += [("text", pieces[-1])] if pieces[-1] else []
        laid.append(out)
        views.append(mine)
    prompt = build_prompt(laid[:-1], laid[-1], ctx.tok, 1, max_tokens=max_tokens, max_images=ctx.max_images,
                          image_shape=(1, 1, 3), bos=bos, start=start)
    kept = tuple(v for mine in views[prompt.dropped_demos:] for v in mine)
    marks = int(np.sum(prompt.tokens == ctx.image_token_id))
    if marks != len(kept):
        raise ValueError(f"the prompt holds {marks} <|image|> tokens for {len(kept)} images (its text names "
                         "<|image|> itself?)")
    return Owl3Prompt(prompt.tokens, kept, prompt.dropped_demos, prompt.cut_query_tokens, cut)


# --------------------------------------------------------------------------------------------------------------------
# Every model: its images' loader, its prompt layout, a prompt's generator request
# --------------------------------------------------------------------------------------------------------------------
def prompt_loader(ctx: Context) -> Callable[[Any], Any]:
    """How `item_parts` loads a reference for this model: LLaVA's and Owl3's keep references (`llava_loader`,
    `owl3_loader`), MM1's makes the pixels (`image_loader`, split as `ctx.split` says)."""
    if ctx.llava is not None:
        return llava_loader()
    if ctx.owl3 is not None:
        return owl3_loader(ctx.image_size)
    return image_loader(ctx.image_size, ctx.norm, ctx.split)


def layout_prompt(ctx: Context, demos: Sequence[list[tuple]], query: list[tuple], max_tokens: int,
                  bos: bool = True) -> Prompt:
    """Demonstrations' and the query's parts (from `prompt_loader(ctx)`) as the model's prompt within `max_tokens`:
    `llava_prompt`, `owl3_prompt` or MM1's `build_prompt` (the template's `start` once before everything)."""
    if ctx.llava is not None:
        return llava_prompt(ctx, demos, query, max_tokens, bos=bos)
    start = _template(ctx).start
    if ctx.owl3 is not None:
        return owl3_prompt(ctx, demos, query, max_tokens, bos=bos, start=start)
    return build_prompt(demos, query, ctx.tok, ctx.k, split=ctx.split, max_tokens=max_tokens,
                        max_images=ctx.max_images, image_shape=(ctx.image_size, ctx.image_size, 3), bos=bos,
                        start=start)


def request(ctx: Context, prompt: Prompt) -> gen.Request:
    """The generator's request for a prompt; a LLaVA prompt's images become their tiles here (float32, normalised
    as the release's processor does) and an Owl3 prompt's their pixels (uint8: crops and global view, or whole), so
    that only a batch's pixels are ever held."""
    if isinstance(prompt, Owl3Prompt):
        made, pics = {}, []
        for image, entry in prompt.images:
            if id(image) not in made:
                made[id(image)] = image.entries(ctx.image_size, prompt.cut)
            pics.append(made[id(image)][entry])
        if not pics:
            return gen.Request(prompt.tokens, np.zeros((0, ctx.image_size, ctx.image_size, 3), np.uint8))
        return gen.Request(prompt.tokens, np.stack(pics).astype(images_lib.pixel_dtype(pics, "a prompt's images")))
    if not isinstance(prompt, LlavaPrompt):
        return gen.Request(prompt.tokens, prompt.images)
    proc, tiles = ctx.llava.processor, []
    for image, plan in zip(prompt.images, prompt.plans):
        tiles.append(llava_images.process_image(image.decode(), proc, anyres=plan.grid != (0, 0)))
        if len(tiles[-1]) != plan.tiles:
            raise ValueError(f"the image processor made {len(tiles[-1])} tiles of an image the model plans "
                             f"{plan.tiles} for; its pinpoints or tile size differ from the model's.")
    size = proc.tile_size
    pixels = np.concatenate(tiles) if tiles else np.zeros((0, size, size, 3), np.float32)
    return gen.Request(prompt.tokens, pixels, prompt.plans)


_request = request  # the name the tests of the LLaVA path use


# --------------------------------------------------------------------------------------------------------------------
# Presentations: what the model is shown for one item (one per rotation of its options; distractor images)
# --------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Presentation:
    query: Item  # the item as shown (question with options, images with distractors)
    options: list[str]  # choice: the options in the order shown
    answer: int = -1  # choice: the right option's position in `options`


LETTERS = "ABCDEFGHIJ"


def _listed(question: str, options: Sequence[str], mode: str) -> str:
    if mode == "letter":
        lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        return f"{question}\n{lines}\nAnswer with the option's letter from the given choices directly."
    return f"{question} {' , '.join(o.rstrip(' .') for o in options)}"


def presentations(task: Task, item: Item, index: int, pool: Sequence[Item], seed: int, values: dict
                  ) -> list[Presentation]:
    """One presentation per rotation of a circular task's options (MMBench CircularEval), the options listed after
    the question; on a distractor task each rotation also shows the item's image among num_images - 1 images of
    other items at a random position, prompted as mPLUG-Owl3 Sec. 4.5 does."""
    if task.fmt != "choice":
        return [Presentation(item, [])]
    mode = values.get("answer_mode", "likelihood")
    if not 0 <= item.answer_index < len(item.options):
        raise ValueError("the item has no answer to score against (a test split?)")
    if not task.circular:
        passes = [(list(item.options), item.answer_index)]
    elif "passes" in item.meta:  # MMBench's TSV holds its circular copies: they are the passes
        passes = item.meta["passes"]
    elif mmbench.circular_eligible(item.options, LETTERS[item.answer_index]):
        passes = mmbench.circular_passes(item.options, item.answer_index)
    else:  # VLMEvalKit's rotation gives such a question one pass (vlmeval/tools.py CIRCULAR)
        passes = [(list(item.options), item.answer_index)]
    out = []
    for r, (options, answer) in enumerate(passes):
        question, images = item.question, list(item.images)
        if task.distractors:
            n = int(values["num_images"])
            others = [o for o in pool if o.id != item.id and o.images]
            if len(others) < n - 1:
                raise ValueError(f"{n - 1} distractor images are needed but the task has {len(others)} other items")
            rng = np.random.default_rng([seed, index, r, n])
            picks = [others[j].images[0] for j in rng.choice(len(others), n - 1, replace=False)]
            target = int(rng.integers(n))
            images = picks[:target] + [item.images[0]] + picks[target:]
            listing = " ".join(f"Image {j + 1}: <image>" for j in range(n))
            question = f"{listing}. In Image {target + 1}, {question}"
        if question and (task.circular or mode == "letter" or item.images):
            question = _listed(question, options, mode)
        shown = dataclasses.replace(item, question=question, images=images)
        out.append(Presentation(shown, list(options), answer))
    return out


# --------------------------------------------------------------------------------------------------------------------
# One task at one shot count
# --------------------------------------------------------------------------------------------------------------------
def evaluate(ctx: Context, params: Any, task: Task, items: list[Item], support: list[Item], shots: int,
             seed: int = 0, progress: bool = False, skipped: Sequence[dict] = ()) -> dict[str, Any]:
    """One task at one shot count: {'scores', 'predictions', 'skipped', 'truncated', ...}; with 'stopped' (and no
    scores) when too many items were skipped. `skipped`: items the reader already refused (they count too)."""
    values = datasets.task_config(task, ctx.eval_cfg) if ctx.eval_cfg is not None else {}
    mode = values.get("answer_mode", "likelihood")
    template = _template(ctx)
    load = prompt_loader(ctx)
    parts = llava_parts if ctx.llava is not None else item_parts
    if task.fmt == "choice" and mode == "likelihood":
        reserve = max((len(ctx.tok.encode(o)) for i in items for o in i.options), default=1)
    else:
        reserve = new_tokens(task, ctx)
    prompts, skipped = [], list(skipped)
    total = len(items) + len(skipped)
    for index, item in enumerate(items):
        try:
            shown = presentations(task, item, index, support, seed, values)
            demos = []
            for d in draw_demos(support, shots, seed, index, exclude=item.id, group=item.meta.get("group", "")):
                first = presentations(task, d, -1 - index, support, seed, values)[0]
                answer = (LETTERS[first.answer] if mode == "letter" else first.options[first.answer]) \
                    if task.fmt == "choice" else d.answers[0]
                demos.append(parts(first.query, task.fmt, load, answer=answer, template=template))
            for p in shown:
                query = parts(p.query, task.fmt, load, template=template)
                prompt = layout_prompt(ctx, demos, query, ctx.max_tokens - reserve, bos=template.bos)
                prompts.append((item, prompt, p))
        except (OSError, ValueError) as e:
            skipped.append({"id": item.id, "reason": str(e)})
            prompts = [p for p in prompts if p[0] is not item]
        if total and len(skipped) > ctx.max_skipped * total:
            reason = (f"eval task {task.name!r} stopped: {len(skipped)} of {total} items skipped (more than "
                      f"eval.max_skipped={ctx.max_skipped:g}); the first: {skipped[0]['id']}: {skipped[0]['reason']}")
            return {"scores": {}, "predictions": [], "skipped": skipped, "truncated": 0, "dropped_demos_mean": 0.0,
                    "stopped": reason}
    if progress:
        print(f"{task.name} {shots}-shot: {len(items)} items, {len(skipped)} skipped", file=sys.stderr)
    batch = max(1, min(ctx.batch_size, ctx.max_batch_images // max(1, max((len(p.images) for _, p, _ in prompts),
                                                                            default=1))))
    if task.fmt == "choice" and mode == "likelihood":
        preds = _choose(ctx, params, prompts, batch, progress, _kind(task).mean_likelihood)
    else:
        preds = _generate(ctx, params, task.name, prompts, new_tokens(task, ctx), batch, progress)
    report = _score(ctx, task, prompts, preds, mode)
    report.update(skipped=skipped, truncated=sum(p.dropped_demos > 0 or p.cut_query_tokens > 0
                                                  for _, p, _ in prompts),
                  dropped_demos_mean=float(np.mean([p.dropped_demos for _, p, _ in prompts])) if prompts else 0.0)
    return report


def new_tokens(task: Task, ctx: Context) -> int:
    """The answer budget: the task's, at most half the model's context (long-answer benchmarks on a small model)."""
    return max(1, min(task.max_new_tokens, ctx.max_tokens // 2))


def _generate(ctx: Context, params: Any, name: str, prompts: list, new: int, batch: int, progress: bool) -> list[str]:
    sampling = gen.Sampling(max_new_tokens=new, stop_ids=stop_ids(ctx))
    generator, texts = ctx.generator(batch), []
    for start in range(0, len(prompts), batch):
        chunk = [request(ctx, p) for _, p, _ in prompts[start:start + batch]]
        for ids, _ in generator(params, chunk, sampling):
            texts.append(ctx.tok.decode(ids, mark_images=False).strip())
        _progress(progress, name, min(start + batch, len(prompts)), len(prompts))
    return texts


def _choose(ctx: Context, params: Any, prompts: list, batch: int, progress: bool, mean: bool = False) -> list[int]:
    """The option with the highest log-likelihood as a continuation of each prompt (`mean`: per token). A LLaVA or
    Owl3 model's prompts are scored `batch` at a time, their images' pixels made for each batch only (one go
    otherwise)."""
    conts, owners, scores = [], [], []
    step = batch if ctx.llava is not None or ctx.owl3 is not None else max(1, len(prompts))
    for start in range(0, len(prompts), step):
        requests = []
        for n, (_, p, shown) in enumerate(prompts[start:start + step], start):
            one = request(ctx, p)
            for option in shown.options:
                requests.append(one)
                conts.append(ctx.tok.encode(option))
                owners.append(n)
        scores += gen.score_continuations(ctx.model, params, requests, conts[len(scores):], pad_id=ctx.tok.pad_id,
                                          batch_size=batch, **ctx.inputs)
    if mean:
        scores = [s / max(1, len(c)) for s, c in zip(scores, conts)]
    _progress(progress, "choice", len(prompts), len(prompts))
    best = []
    for n in range(len(prompts)):
        mine = [s for s, o in zip(scores, owners) if o == n]
        best.append(int(np.argmax(mine)))
    return best


def _progress(on: bool, name: str, done: int, total: int) -> None:
    if on:
        bar = "#" * (30 * done // max(total, 1))
        print(f"\r{name:20s} [{bar:30s}] {done}/{total}", end="\n" if done == total else "", file=sys.stderr)


def _score(ctx: Context, task: Task, prompts: list, preds: list, mode: str = "likelihood") -> dict[str, Any]:
    rows, scores, report_extra = [], {}, {}
    if task.fmt == "choice":
        by_question: dict[str, list[bool]] = {}
        judge_details: dict[str, Any] = {}
        if mode == "likelihood":
            choices = list(preds)
        else:  # letters read by VLMEvalKit's rules, then (with eval.judge) its judge step, as MMBench's scorer does
            passes = [{"group": item.id, "question": item.meta.get("tsv_question", item.question),  # without hint
                       "options": shown.options, "answer": shown.answer} for item, _, shown in prompts]
            try:
                choices, judge_details = mmbench.mmbench_judge_choices(passes, preds, _mcq(ctx), ctx.judge(),
                                                                        task=task.name)
            except judge_lib.JudgeError as e:
                return {"scores": {}, "predictions": [], "convention": ctx.convention, "stopped": str(e)}
        for (item, prompt, shown), pred, choice in zip(prompts, preds, choices):
            right = choice == shown.answer
            by_question.setdefault(item.id, []).append(right)
            rows.append({"id": item.id, "pass": len(by_question[item.id]) - 1, "question": item.question,
                         "options": shown.options, "answer": shown.answer, "correct": right,
                         "choice": None if choice is None else shown.options[choice],
                         **({"prediction": pred} if mode == "letter" else {}),
                         "dropped_demos": prompt.dropped_demos, **_meta(item)})
        if "accuracy" in task.metrics:  # the first presentation (original order) of every question
            scores["accuracy"] = float(np.mean([v[0] for v in by_question.values()])) if by_question else 0.0
        if "circular_accuracy" in task.metrics:
            scores["circular_accuracy"] = mmbench.circular_accuracy(by_question) if by_question else 0.0
        if "needs_judge" in judge_details:  # answers the judge could not settle either (a random letter)
            scores["needs_judge"] = judge_details["needs_judge"]
        extra = {"details": judge_details} if judge_details else {}
        aggregate = _kind(task).aggregate
        if aggregate is not None and by_question:  # the benchmark's own breakdown of the first presentations
            firsts = {item.id: item for item, _, _ in prompts}
            own, _, details = aggregate(list(firsts.values()), [by_question[i][0] for i in firsts], ctx.convention)
            scores.update(own)
            extra = {"details": {**judge_details, **details}}
        return {"scores": scores, "predictions": rows, "convention": ctx.convention, **extra}
    for (item, prompt, _), text in zip(prompts, preds):
        rows.append({"id": item.id, "question": item.question, "prediction": text, "answers": item.answers,
                     "dropped_demos": prompt.dropped_demos, **_meta(item)})
    if "cider" in task.metrics:
        texts = [a for item, _, _ in prompts for a in item.answers] + [r["prediction"] for r in rows]
        tokens, used = metrics.tokenize_captions(texts, ctx.caption_tokenizer)  # one Java call for the task
        refs, at = {}, 0
        for r, (item, _, _) in zip(rows, prompts):
            refs[r["id"]], at = tokens[at:at + len(item.answers)], at + len(item.answers)
        cands = {r["id"]: t for r, t in zip(rows, tokens[at:])}
        report_extra["caption_tokenizer"] = used
        scores["cider"] = metrics.cider(refs, cands)[0] if rows else 0.0
    own = _kind(task).scorers
    per_item = {  # the embedded benchmark's metrics (ours); a benchmark's own come from its kind
        "vqa_accuracy": lambda t, it, c: metrics.embedded_vqa_accuracy(t, it.answers),
        "exact_match": lambda t, it, c: metrics.exact_match(t, it.answers),
        "anls": lambda t, it, c: text_rich.anls(t, it.answers, convention=c),
        "last_word_accuracy": lambda t, it, c: metrics.last_word_accuracy(t, it.answers[0]),
        "box_iou50": lambda t, it, c: float(_box_hit(t, it, ctx.box_format, c)),
        **own,
    }
    for name in task.metrics:
        if name in per_item:
            values = [per_item[name](text, item, ctx.convention) for (item, _, _), text in zip(prompts, preds)]
            for row, value in zip(rows, values):
                row[name] = value
            scores[name] = float(np.mean(values)) if values else 0.0
    kind = _kind(task)
    if kind.aggregate is not None and prompts:  # task-level scores by the benchmark's own rules (scorers.items)
        args = [[item for item, _, _ in prompts], preds, ctx.convention]
        try:
            own, per_row, report_extra["details"] = kind.aggregate(*args, ctx.judge()) if kind.judged else \
                kind.aggregate(*args)
        except judge_lib.JudgeError as e:  # a judge that stays down stops this task; the others run
            return {"scores": {}, "predictions": rows, "convention": ctx.convention, "stopped": str(e)}
        if report_extra["details"].get("not_scored"):
            report_extra["not_scored"] = report_extra["details"]["not_scored"]
        scores.update(own)
        for row, values in zip(rows, per_row):
            row.update(values)
    return {"scores": scores, "predictions": rows, "convention": ctx.convention, **report_extra}


def _kind(task: Task) -> datasets.Kind:
    """The task's kind (an embedded task has none: a kind with no reader-specific scoring)."""
    return datasets.KINDS.get(task.kind) or _NO_KIND


_NO_KIND = datasets.Kind(None, "", (), {})


def _meta(item: Item) -> dict[str, Any]:
    """The item's reader fields for its prediction row (MMBench's circular passes are in the rows already)."""
    return {k: v for k, v in item.meta.items() if k != "passes"}


def _mcq(ctx: Context) -> str:
    """The multiple-choice answer extraction's convention: VLMEvalKit's is MMBench's official one."""
    return "official" if ctx.convention == "vlmevalkit" else ctx.convention


def _box_hit(text: str, item: Item, fmt: str, convention: str) -> bool:
    """IoU >= 0.5: in pixels against the reader's box (RefCOCO: Ferret's eval_refexp.py for Ferret's boxes), else
    the two texts' boxes (the embedded task)."""
    if "box" in item.meta:
        m = item.meta
        if fmt == "ferret":
            return refexp.refexp_correct(text, m["box"], m["width"], m["height"], convention=convention)
        pred = metrics.box_from_text(text, m["width"], m["height"], fmt)
        return pred is not None and metrics.box_iou(pred, m["box"]) >= 0.5
    pred, true = metrics.parse_box(text), metrics.parse_box(item.answers[0])
    return pred is not None and true is not None and metrics.box_iou(pred, true) >= 0.5


# --------------------------------------------------------------------------------------------------------------------
# Every task at every shot count
# --------------------------------------------------------------------------------------------------------------------
def read_tasks(config: ml_collections.ConfigDict, tasks: Sequence[str], limit: int
               ) -> dict[str, tuple[Task, list[Item], list[Item], list[dict]]]:
    """{name: (task, items, support, skipped records)} for every task `tasks` names (groups expanded): names, config
    fields and files checked and the annotations read, so that bad input stops before any model is built."""
    eval_cfg = _eval_cfg(config)
    names = datasets.expand(suites.select(tasks, eval_cfg), eval_cfg)
    datasets.check_eval_config(eval_cfg, names)
    chosen = [datasets.task_for(name, eval_cfg) for name in names]
    return {task.name: (task, *load_task(task, config, limit)) for task in chosen}


def run_tasks(model: Any, params: Any, config: ml_collections.ConfigDict, tasks: Sequence[str],
              shots: Sequence[int], *, limit: int = 100, batch_size: int = 16, seed: int = 0,
              reports: dict | None = None, progress: bool = False, context: Context | None = None,
              loaded: dict | None = None) -> dict[str, float]:
    """Scores {"task/Nshot/metric": value} for every task and shot count (first `limit` items of each task).

    `tasks` may name groups (textcore: its members run, and "textcore/Nshot/accuracy" is their mean). Pass
    `reports={}` to receive the full reports (predictions, skipped items, 'stopped') keyed "task/Nshot"; pass the
    same `context` (Context.from_config / Context.for_owl3) across calls to reuse the compiled functions.
    Every task is checked (names, config fields, files) before any runs; `loaded` is `read_tasks`' answer for the
    same tasks and limit, when the caller read them already (the eval command does, before it loads a model).
    """
    eval_cfg = _eval_cfg(config)
    loaded = read_tasks(config, tasks, limit) if loaded is None else loaded  # file errors before the model runs
    ctx = context or Context.from_config(model, config, batch_size)
    flat: dict[str, float] = {}
    reports = {} if reports is None else reports
    for task, items, support, skipped in loaded.values():
        for k in shots:
            report = evaluate(ctx, params, task, items, support, int(k), seed=seed, progress=progress,
                              skipped=skipped)
            if report.get("stopped") and progress:
                print(report["stopped"], file=sys.stderr)
            for metric, value in report["scores"].items():
                flat[f"{task.name}/{k}shot/{metric}"] = value
            reports[f"{task.name}/{k}shot"] = report
    for group in (g for g in tasks if g in datasets.GROUPS):
        members = datasets.group_members(group, eval_cfg)
        for k in shots:
            got = [flat.get(f"{m}/{k}shot/{datasets.TASKS[m].metrics[0]}") for m in members if m in datasets.TASKS]
            if got and all(v is not None for v in got):
                flat[f"{group}/{k}shot/accuracy"] = float(np.mean(got))
    return flat
