"""Few-shot prompts as MM1 builds them: k demonstrations interleaved before the query, then the query.

Formats (text between the parts is the model's training layout; `TEMPLATES` holds the chat layouts):
  caption   <bos> [<img> caption]*k <img>                                   -> generate the caption
  vqa       <bos> [User: <img> question Assistant: answer <eos>]*k User: <img> question Assistant:
  grounding as vqa, the answer a box in the model's coordinate format
  choice    as vqa (or plain text when the item has no images and no question), scored per option or by letter
  continue  <bos> [passage]*k context                                       -> generate the next word (LAMBADA)
An item's question may place its images with `<image>` markers (multi-image questions); otherwise its images go
before the question. A query item's meta may add a benchmark's system text before the turn ("system") and the start
of the answer after it ("answer_prefix": MVBench's "Best option:(", which its scorer puts back before the reply).
Each image becomes K <image> slot tokens (or, when evaluation splits images as training did, its crops and overview,
each K slots, ordered and marked as in training). A question-answer demonstration ends with <eos>, as every
assistant turn does in SFT data, so a k-shot VQA prompt is a (k+1)-turn chat; caption demonstrations do not (in
pre-training <eos> ends a document, so nothing follows one in the same document).

Demonstrations come from a support split, drawn reproducibly (seed, item index). When the prompt does not fit the
model's context (tokens, plus the new tokens to generate) or its image budget, demonstrations are dropped from the
left (the earliest first) and the count is reported; a query that still does not fit loses text from the left, up
to its first image; if even that is not enough the item is skipped with a reason, never a crash.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mm1_jax.data.examples import ImageEntries, arrange_entries
from mm1_jax.data.images import pixel_dtype
from mm1_jax.data.tokenizer import Tokenizer


@dataclasses.dataclass
class Item:
    """One evaluation (or support) example. images: references (paths / bytes) or normalised arrays."""

    id: str
    images: list[Any]
    question: str = ""
    answers: list[str] = dataclasses.field(default_factory=list)  # references / human answers; [0] for demos
    options: list[str] = dataclasses.field(default_factory=list)  # multiple choice
    answer_index: int = -1
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Prompt:
    tokens: np.ndarray
    images: np.ndarray  # [n, S, S, 3]
    dropped_demos: int = 0
    cut_query_tokens: int = 0


def _content(item: Item, question: str, load: Callable[[Any], np.ndarray]) -> list[tuple]:
    """User content: images and question text in order."""
    pics = [load(ref) for ref in item.images]
    if "<image>" not in question:
        return [("image", p) for p in pics] + ([("text", question)] if question.strip() else [])
    parts, pieces = [], question.split("<image>")
    for j, piece in enumerate(pieces):
        if j > 0 and j - 1 < len(pics):
            parts.append(("image", pics[j - 1]))
        if piece.strip():
            parts.append(("text", piece.strip()))
    return parts


@dataclasses.dataclass(frozen=True)
class Template:
    """A chat layout: the text before the user's content, between it and the answer, after the answer."""

    user: str
    assistant: str
    end: tuple  # a part: ("eos",) or ("text", "...")
    bos: bool = True  # prompts start with <bos>
    start: str = ""  # text once at the start of a prompt (after <bos>), before the first demonstration


TEMPLATES = {
    "mm1": Template("User:", "Assistant:", ("eos",)),  # what the SFT data's turns look like (data.examples)
    # Qwen2's ChatML as mPLUG-Owl3's release prompts it (processing_mplugowl3.py build_text_qwen: an empty system
    # turn first when the messages have none, then "\n<|im_start|>user\n...<|im_end|>", "\n<|im_start|>assistant\n");
    # Qwen2 has no <bos>
    "chatml": Template("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", ("text", "<|im_end|>\n"),
                       bos=False, start="<|im_start|>system\n<|im_end|>\n"),
}


def item_parts(item: Item, fmt: str, load: Callable, answer: str | None = None, question: str | None = None,
               template: Template = TEMPLATES["mm1"]) -> list[tuple]:
    """One item as parts; with `answer` it is a demonstration (the answer appended)."""
    question = item.question if question is None else question
    if fmt == "caption":
        parts = _content(item, "", load)
        return parts + ([("text", answer)] if answer is not None else [])
    if fmt in ("choice", "continue") and not item.images and not question:  # text only: a context, no user turn
        context = [("text", item.meta["context"])] if item.meta.get("context") else []
        return context + ([("text", (" " if fmt == "continue" else "") + answer)] if answer is not None else [])
    parts = [("text", template.user)] + _content(item, question, load) + [("text", template.assistant)]
    if answer is not None:
        return parts + [("text", answer), template.end]
    # a benchmark's own system text before the question and the start of its answer (MVBench: "Best option:(")
    system, prefix = item.meta.get("system", ""), item.meta.get("answer_prefix", "")
    return ([("text", system)] if system else []) + parts + ([("text", prefix)] if prefix else [])


def encode(parts: Sequence[tuple], tok: Tokenizer, k: int, split: dict | None = None
           ) -> tuple[list[int], list[np.ndarray]]:
    """Parts -> ids and image entries; a split image (`ImageEntries`) is ordered and marked as in training."""
    ids, pics = [], []
    for part in parts:
        if part[0] == "text":
            ids += tok.encode(part[1])
        elif part[0] == "eos":
            ids.append(tok.eos_id)
        elif isinstance(part[1], ImageEntries):
            entries, marks = arrange_entries(part[1], split or {}, tok)
            for entry, mark in zip(entries, marks):
                ids += mark + [tok.image_id] * k
                pics.append(entry)
        else:
            ids += [tok.image_id] * k
            pics.append(part[1])
    return ids, pics


def draw_demos(support: Sequence[Item], shots: int, seed: int, index: int, exclude: str = "", group: str = ""
               ) -> list[Item]:
    """`shots` distinct support items for eval item `index`, the same on every run; with `group`, only support items
    of that group (`meta["group"]`: e.g. the answer format a few-shot task shows only through its demonstrations)."""
    if shots == 0 or not support:
        return []
    rng = np.random.default_rng([seed, shots, index])
    pool = [i for i in rng.permutation(len(support)) if support[i].id != exclude
            and (not group or support[i].meta.get("group") == group)]
    return [support[i] for i in pool[:shots]]


def build_prompt(demos: Sequence[list[tuple]], query: list[tuple], tok: Tokenizer, k: int, *, max_tokens: int,
                 max_images: int, image_shape: tuple[int, ...], split: dict | None = None, bos: bool = True,
                 start: str = "") -> Prompt:
    """<bos> + `start` (a template's text once before everything) + demos + query within max_tokens / max_images
    (demos dropped from the left first); images split into entries (`split`, a `data.split`) count one each."""
    head = ([tok.bos_id] if bos else []) + (tok.encode(start) if start else [])
    encoded = [encode(d, tok, k, split) for d in demos]
    q_ids, q_pics = encode(query, tok, k, split)
    dropped = 0
    while True:
        kept = encoded[dropped:]
        n_tokens = len(head) + sum(len(ids) for ids, _ in kept) + len(q_ids)
        n_images = sum(len(p) for _, p in kept) + len(q_pics)
        if (n_tokens <= max_tokens and n_images <= max_images) or dropped == len(encoded):
            break
        dropped += 1
    cut = 0
    if n_tokens > max_tokens or n_images > max_images:
        q_ids, q_pics, cut = _cut_query(q_ids, q_pics, tok.image_id, k, max_tokens - len(head), max_images)
    ids = head + [t for d, _ in kept for t in d] + q_ids
    pics = [p for _, ps in kept for p in ps] + q_pics
    dtype = pixel_dtype(pics, "a prompt's images")
    images = np.stack(pics).astype(dtype) if pics else np.zeros((0,) + tuple(image_shape), np.uint8)
    return Prompt(np.asarray(ids, np.int32), images, dropped, cut)


def _cut_query(ids: list[int], pics: list[np.ndarray], image_id: int, k: int, max_tokens: int, max_images: int):
    """Drop query text from the left, before its first image (its images are the question), until it fits;
    ValueError when it cannot."""
    first = next((i for i, t in enumerate(ids) if t == image_id), len(ids))
    cut = max(0, len(ids) - max_tokens)
    if cut > first or len(pics) > max_images:
        raise ValueError(f"the query alone ({len(ids)} tokens, {len(pics)} images) does not fit {max_tokens} tokens "
                         f"/ {max_images} images")
    return ids[cut:], pics, cut
