"""Evaluation tasks and `run_tasks`, the entry point the trainer and the CLI share.

A task names where its items come from (the embedded world or annotation files named in `config.eval`), its prompt
format (caption / vqa / choice) and its metrics. `evaluate` runs one task at one shot count and returns a report:
scores, predictions, skipped items (missing or unreadable images, prompts that cannot fit) and how many prompts
lost demonstrations to the context length. `run_tasks` flattens the scores to {"task/Nshot/metric": value}.

    scores = run_tasks(model, params, config, ["embedded_cap", "embedded_vqa"], [0, 4])
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np

from mm1_jax.data import examples as examples_lib
from mm1_jax.data import images as images_lib
from mm1_jax.data import sources as sources_lib
from mm1_jax.data import synthetic
from mm1_jax.data.tokenizer import Tokenizer, load_tokenizer
from mm1_jax.eval import embedded, metrics, readers
from mm1_jax.runtime import generate as gen
from mm1_jax.eval.prompts import Item, build_prompt, draw_demos, item_parts
from mm1_jax.models.inputs import input_spec


@dataclasses.dataclass
class Task:
    name: str
    fmt: str  # caption | vqa | choice
    load: Callable[[ml_collections.ConfigDict, int], tuple[list[Item], list[Item], list[dict]]]
    metrics: tuple[str, ...]
    max_new_tokens: int = 16
    circular: bool = False  # choice: list the options in the prompt, every rotation must be right
    needs: tuple[str, ...] = ()  # config.eval fields the task reads (checked before training starts)


def _embedded_root(config) -> str:
    """config.eval.embedded_root (the dataset a run trained on, so VQA's held-out split matches), else the default."""
    return str((config.get("eval") or {}).get("embedded_root") or "") or synthetic.ensure_generated()


def _eval_path(config, field: str) -> str:
    value = config.get("eval", {}).get(field) if config.get("eval") is not None else None
    if not value:
        raise ValueError(f"this task needs config.eval.{field} (an annotation file or image folder); it is unset.")
    return str(value)


def _make(fn, support_n: int = 200):
    return lambda config, n: (fn(n, "eval"), fn(support_n, "support"), [])


TASKS = {
    "embedded_cap": Task("embedded_cap", "caption", _make(embedded.captioning), ("cider", "exact_match")),
    "embedded_vqa": Task("embedded_vqa", "vqa", lambda c, n: (embedded.vqa(_embedded_root(c), n, "eval"),
                                                              embedded.vqa(_embedded_root(c), 500, "support"), []),
                         ("vqa_accuracy", "exact_match"), max_new_tokens=6),
    "embedded_ocr": Task("embedded_ocr", "vqa", _make(embedded.ocr), ("exact_match",), max_new_tokens=6),
    "embedded_grounding": Task("embedded_grounding", "vqa", _make(embedded.grounding), ("box_iou50",),
                               max_new_tokens=12),
    "embedded_multi": Task("embedded_multi", "vqa", _make(embedded.multi_image), ("exact_match",), max_new_tokens=6),
    "embedded_mc": Task("embedded_mc", "choice", _make(embedded.multiple_choice), ("accuracy", "circular_accuracy"),
                        circular=True),
    "embedded_text": Task("embedded_text", "choice", _make(embedded.text_choice), ("accuracy",)),
    "coco_cap": Task("coco_cap", "caption", lambda c, n: _split(readers.read_coco_captions(
        _eval_path(c, "coco_annotations"), _eval_path(c, "coco_images")), n), ("cider",), max_new_tokens=30,
                     needs=("coco_annotations", "coco_images")),
    "vqa": Task("vqa", "vqa", lambda c, n: _split(readers.read_vqa(
        _eval_path(c, "vqa_questions"), c.eval.get("vqa_annotations") or None, _eval_path(c, "vqa_images"),
        c.eval.get("vqa_image_pattern") or "COCO_val2014_{image_id:012d}.jpg"), n), ("vqa_accuracy",),
                max_new_tokens=10, needs=("vqa_questions", "vqa_images")),
    "mc": Task("mc", "choice", lambda c, n: _split(readers.read_multiple_choice(
        _eval_path(c, "mc_file"), c.eval.get("mc_images") or ""), n), ("accuracy", "circular_accuracy"),
               circular=True, needs=("mc_file",)),
}


def _split(loaded: tuple[list[Item], list[dict]], n: int) -> tuple[list[Item], list[Item], list[dict]]:
    """Annotation files have one split: demonstrations for item i are drawn from the others (never itself)."""
    items, missing = loaded
    return items[:n], items, missing


def image_loader(size: int, norm: str, split: dict | None = None) -> Callable[[Any], Any]:
    """Reference (path, bytes or a ready array) -> normalised [S, S, 3], or with `split` (a `data.split`) the image's
    split entries as training lays them out; OSError / ValueError when unreadable."""

    def load(ref: Any) -> Any:
        if isinstance(ref, np.ndarray):
            return ref
        img = images_lib.decode_image(ref if isinstance(ref, bytes) else sources_lib.read_image_ref(ref, ".", ""))
        if split is not None:
            return examples_lib.split_entries(img, split, size, norm)
        return images_lib.whole_image(img, size, norm)

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


@dataclasses.dataclass
class Context:
    """What prompts and generation need about the model."""

    model: Any
    tok: Tokenizer
    k: int
    image_size: int
    norm: str
    max_tokens: int
    max_images: int
    batch_size: int = 16
    generator: gen.Generator | None = None
    split: dict | None = None  # `eval_split`: images split as in training, or whole
    caption_tokenizer: str = "auto"  # CIDEr's tokenisation (`metrics.tokenize_captions`)

    @classmethod
    def from_config(cls, model: Any, config: ml_collections.ConfigDict, batch_size: int = 16) -> Context:
        spec = input_spec(config.model)
        k = spec.tokens_per_image
        tok = load_tokenizer(config.data.tokenizer)
        return cls(model, tok, k, spec.image_size, spec.image_norm, int(config.data.seq_len), spec.max_images,
                   batch_size,
                   gen.Generator(model, tokens_per_image=k, image_id=tok.image_id, pad_id=tok.pad_id,
                                 batch_size=batch_size), eval_split(config),
                   str((config.get("eval") or {}).get("caption_tokenizer") or "auto"))


def _stop_ids(tok: Tokenizer) -> tuple[int, ...]:
    period = tok.encode(".")
    return (tok.eos_id, tok.image_id) + (tuple(period) if len(period) == 1 else ())


def evaluate(ctx: Context, params: Any, task: Task, items: list[Item], support: list[Item], shots: int,
             seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """One task at one shot count: {'scores', 'predictions', 'skipped', 'truncated'}."""
    load = image_loader(ctx.image_size, ctx.norm, ctx.split)
    shape = (ctx.image_size, ctx.image_size, 3)
    reserve = task.max_new_tokens if task.fmt != "choice" else max(len(ctx.tok.encode(o)) for i in items
                                                                   for o in i.options or [""])
    prompts, kept, skipped = [], [], []
    for index, item in enumerate(items):
        try:
            demos = [item_parts(d, task.fmt, load, answer=_demo_answer(d),
                                question=_rotated_questions(d)[0][0] if task.circular else None)
                     for d in draw_demos(support, shots, seed, index, exclude=item.id)]
            questions = _rotated_questions(item) if task.circular else [(item.question, item.options)]
            for question, options in questions:
                query = item_parts(item, task.fmt, load, question=question)
                prompt = build_prompt(demos, query, ctx.tok, ctx.k, split=ctx.split,
                                      max_tokens=ctx.max_tokens - reserve,
                                      max_images=ctx.max_images, image_shape=shape)
                prompts.append((item, prompt, options))
            kept.append(item)
        except (OSError, ValueError) as e:
            skipped.append({"id": item.id, "reason": str(e)})
    if progress:
        print(f"{task.name} {shots}-shot: {len(kept)} items, {len(skipped)} skipped", file=sys.stderr)
    if task.fmt == "choice":
        preds = _choose(ctx, params, prompts, progress)
    else:
        preds = _generate(ctx, params, task, prompts, progress)
    report = _score(task, prompts, preds, ctx.caption_tokenizer)
    report.update(skipped=skipped, truncated=sum(p.dropped_demos > 0 or p.cut_query_tokens > 0
                                                  for _, p, _ in prompts),
                  dropped_demos_mean=float(np.mean([p.dropped_demos for _, p, _ in prompts])) if prompts else 0.0)
    return report


def _demo_answer(item: Item) -> str:
    return item.options[item.answer_index] if item.options else item.answers[0]


def _rotated_questions(item: Item) -> list[tuple[str, list[str]]]:
    """One question per rotation of the options, listed after the question (MMBench's circular evaluation)."""
    return [(f"{item.question} {' , '.join(o.rstrip(' .') for o in rot)}", rot)
            for rot in metrics.rotations(item.options)]


def _generate(ctx: Context, params: Any, task: Task, prompts: list, progress: bool) -> list[str]:
    sampling = gen.Sampling(max_new_tokens=task.max_new_tokens, stop_ids=_stop_ids(ctx.tok))
    texts = []
    for start in range(0, len(prompts), ctx.batch_size):
        chunk = [gen.Request(p.tokens, p.images) for _, p, _ in prompts[start:start + ctx.batch_size]]
        for ids, _ in ctx.generator(params, chunk, sampling):
            texts.append(ctx.tok.decode(ids, mark_images=False).strip())
        _progress(progress, task.name, min(start + ctx.batch_size, len(prompts)), len(prompts))
    return texts


def _choose(ctx: Context, params: Any, prompts: list, progress: bool) -> list[int]:
    requests, conts, owners = [], [], []
    for n, (_, p, options) in enumerate(prompts):
        for option in options:
            requests.append(gen.Request(p.tokens, p.images))
            conts.append(ctx.tok.encode(option))
            owners.append(n)
    scores = gen.score_continuations(ctx.model, params, requests, conts, image_id=ctx.tok.image_id,
                                     pad_id=ctx.tok.pad_id, tokens_per_image=ctx.k, batch_size=ctx.batch_size)
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


def _score(task: Task, prompts: list, preds: list, caption_tokenizer: str = "auto") -> dict[str, Any]:
    rows, scores, report_extra = [], {}, {}
    if task.fmt == "choice":
        by_question: dict[str, list[bool]] = {}
        for (item, prompt, options), choice in zip(prompts, preds):
            right = options[choice] == item.options[item.answer_index]
            by_question.setdefault(item.id, []).append(right)
            rows.append({"id": item.id, "options": options, "choice": options[choice], "correct": right,
                         "dropped_demos": prompt.dropped_demos})
        if "accuracy" in task.metrics:  # the first presentation (original order) of every question
            scores["accuracy"] = float(np.mean([v[0] for v in by_question.values()])) if by_question else 0.0
        if "circular_accuracy" in task.metrics:
            scores["circular_accuracy"] = metrics.circular_accuracy(by_question)
        return {"scores": scores, "predictions": rows}
    for (item, prompt, _), text in zip(prompts, preds):
        rows.append({"id": item.id, "prediction": text, "answers": item.answers[:3],
                     "dropped_demos": prompt.dropped_demos, **item.meta})
    if "cider" in task.metrics:
        texts = [a for item, _, _ in prompts for a in item.answers] + [r["prediction"] for r in rows]
        tokens, used = metrics.tokenize_captions(texts, caption_tokenizer)  # one Java call for the task
        refs, at = {}, 0
        for r, (item, _, _) in zip(rows, prompts):
            refs[r["id"]], at = tokens[at:at + len(item.answers)], at + len(item.answers)
        cands = {r["id"]: t for r, t in zip(rows, tokens[at:])}
        report_extra["caption_tokenizer"] = used
        scores["cider"] = metrics.cider(refs, cands)[0] if rows else 0.0
    per_item = {
        "vqa_accuracy": lambda t, it: metrics.vqa_accuracy(t, it.answers),
        "exact_match": lambda t, it: metrics.exact_match(t, it.answers),
        "anls": lambda t, it: metrics.anls(t, it.answers),
        "relaxed_accuracy": lambda t, it: metrics.relaxed_accuracy(t, it.answers),
        "box_iou50": lambda t, it: float(_box_hit(t, it.answers[0])),
    }
    for name in task.metrics:
        if name in per_item:
            values = [per_item[name](text, item) for (item, _, _), text in zip(prompts, preds)]
            scores[name] = float(np.mean(values)) if values else 0.0
    return {"scores": scores, "predictions": rows, **report_extra}


def _box_hit(text: str, truth: str) -> bool:
    pred, true = metrics.parse_box(text), metrics.parse_box(truth)
    return pred is not None and true is not None and metrics.box_iou(pred, true) >= 0.5


def run_tasks(model: Any, params: Any, config: ml_collections.ConfigDict, tasks: Sequence[str],
              shots: Sequence[int], *, limit: int = 100, batch_size: int = 16, seed: int = 0,
              reports: dict | None = None, progress: bool = False, context: Context | None = None
              ) -> dict[str, float]:
    """Scores {"task/Nshot/metric": value} for every task and shot count (first `limit` items of each task).

    Pass `reports={}` to receive the full reports (predictions, skipped items) keyed "task/Nshot"; pass the same
    `context` (Context.from_config) across calls to reuse the compiled generation functions.
    """
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; known: {sorted(TASKS)}.")
    ctx = context or Context.from_config(model, config, batch_size)
    flat = {}
    for name in tasks:
        task = TASKS[name]
        items, support, missing = task.load(config, limit)
        for k in shots:
            report = evaluate(ctx, params, task, items, support, int(k), seed=seed, progress=progress)
            report["skipped"] = missing + report["skipped"]
            for metric, value in report["scores"].items():
                flat[f"{name}/{k}shot/{metric}"] = value
            if reports is not None:
                reports[f"{name}/{k}shot"] = report
    return flat
