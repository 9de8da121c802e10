"""lmms-eval's model API over an mm1_jax checkpoint, so lmms-eval's own runner scores our models on its tasks.

    python -m mm1_jax.eval.lmms_eval_model --model mm1_jax \
        --model_args config=configs/tiny.py,checkpoint=/tmp/tiny --tasks mme --batch_size 16 --output_path /tmp/out

(the same arguments `python -m lmms_eval` takes; this module registers the model name `mm1_jax` first, then runs
lmms-eval's command line; with the `lmms_eval.models` entry point in our package metadata `python -m lmms_eval
--model mm1_jax ...` works as well). From Python:

    from lmms_eval.evaluator import simple_evaluate
    model = LmmsEvalModel(config="configs/tiny.py", checkpoint="/tmp/tiny", batch_size=16)
    results = simple_evaluate(model=model, tasks=["mme"])

The checkpoint is loaded as `python -m mm1_jax.eval` loads it (`mm1_jax.eval.results.load`): an MM1 training
checkpoint of the config's model (absent: a random initialisation from `seed`), or a converted mPLUG-Owl3 directory
(with `configs/owl3_eval.py:TOKENIZER_JSON`). model_args: `config` (a config file, `FILE.py[:ARG]`, or a ConfigDict),
`checkpoint`, `seed`, `max_new_tokens` (for tasks that do not say), and any dotted config field (`data.seq_len=2048`,
`eval.template=chatml`) set on the config; lmms-eval's `--batch_size` is the number of prompts a generator call takes.

What lmms-eval asks of a model (lmms-eval 0.7.3, lmms_eval/api/model.py `lmms`; the request tuples are built in
lmms_eval/api/task.py `ConfigurableTask.construct_requests`):
  generate_until        (context, generation_kwargs, doc_to_visual, doc_id, task, split) -> the generated text
  loglikelihood         (context, continuation or doc_to_target, doc_to_visual, doc_id, task, split), or
                        (context, continuation) for unconditional scores -> (the continuation's loss, is it
                        greedy) (see below: a loss, not the log-probability the base class's docstring names)
  generate_until_multi_round  (context, generation_kwargs, doc_to_visual, doc_to_text, doc_id, task, split): round
                        r > 0 asks doc_to_text(doc, previous_output=, round_idx=, previous_round_info=) for the next
                        (visuals, context, done, outputs, info) (as lmms_eval/models/simple/llava_onevision.py does)
The document is `self.task_dict[task][split][doc_id]` (the evaluator fills task_dict); doc_to_visual(doc) gives its
images (PIL images; a list for multi-image documents).

A prompt is laid out as our own evaluation lays out a question (`mm1_jax.eval.prompts.item_parts`, format "vqa",
in the model's chat template: `User: <images> context Assistant:` for MM1, ChatML for mPLUG-Owl3), images prepared
as the evaluation prepares them (size, normalisation, splitting). Where the context holds lmms-eval's `<image>`
markers (one per image, LLaVA's convention) the images go there; otherwise they come first. Generation runs through
the cached batched generator (`mm1_jax.runtime.generate.Generator`, `batch_size` prompts at a time); it stops at
<eos>, an <image> token or ChatML's <|im_end|>, and the text is cut before the first of the task's `until`
strings. Greedy unless the task samples (do_sample with temperature > 0, then top_p / top_k); beam search and
repetition penalties are refused.

A log-likelihood request is answered as lmms-eval's own models answer it: with the continuation's mean loss, minus
`score_continuations`' summed log-probability over the continuation's tokens divided by their number (the
continuation encoded on its own, lmms-eval's leading space included). lmms-eval 0.7.3 scores multiple choice by
the smallest value (lmms_eval/api/task.py `ConfigurableTask.process_results`: `pred = np.argmin(lls)`, "since we
return the actual loss in many model loglikelihood"; lmms_eval/models/simple/llava.py returns the LM loss), so a
log-probability there would pick the least likely option. With choices of different token counts this is
length-normalised, unlike our own evaluation's summed log-likelihood. is_greedy compares the continuation with the
greedy generation of as many tokens. Each pair comes wrapped in lmms-eval's GenerationResult (`.text` is the
pair): lmms-eval 0.7.3's evaluator turns any answer that is neither text nor a GenerationResult into its str
(lmms_eval/api/instance.py `unwrap_generation_output`, called on every request type in lmms_eval/evaluator.py
`evaluate`), after which its multiple-choice scoring fails on the string (`lls, is_greedy = zip(*results)`).

A prompt that cannot fit the model's context even without text before its first image is skipped as our
evaluation skips it: a warning, "" for a generation, (inf, False) for a log-likelihood, and an entry in `skipped`.
lmms-eval (and the torch it imports) is needed here only; nothing else in mm1_jax imports this module.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from lmms_eval.utils import eval_logger
from PIL import Image

from mm1_jax.data import examples as examples_lib
from mm1_jax.data import images as images_lib
from mm1_jax.eval import prompts, results, tasks
from mm1_jax.runtime import generate as gen

MODEL_NAME = "mm1_jax"
IMAGE_MARKER = "<image>"  # lmms-eval's placeholder for an image inside a context (LLaVA's DEFAULT_IMAGE_TOKEN)
# generation_kwargs that change how tokens are chosen and are not supported, with the value that leaves them off
_REFUSED = {"num_beams": 1, "repetition_penalty": 1.0, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
            "num_return_sequences": 1}
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".wmv", ".m4v")


def lmms_eval_manifests() -> list[Any]:
    """The `lmms_eval.models` entry point's payload: the model name `mm1_jax` and this module's class
    (lmms_eval/models/registry_v2.py `ModelRegistryV2.load_entrypoint_manifests`)."""
    from lmms_eval.models.registry_v2 import ModelManifest  # pylint: disable=import-outside-toplevel

    return [ModelManifest(model_id=MODEL_NAME, simple_class_path="mm1_jax.eval.lmms_eval_model.LmmsEvalModel")]


def register() -> None:
    """Make `--model mm1_jax` (and simple_evaluate(model="mm1_jax")) resolve to `LmmsEvalModel` in this process."""
    from lmms_eval import models  # pylint: disable=import-outside-toplevel

    for manifest in lmms_eval_manifests():
        models.MODEL_REGISTRY_V2.register_manifest(manifest, overwrite=True)


def load_config(config: str | ml_collections.ConfigDict, overrides: dict[str, Any] | None = None
                ) -> ml_collections.ConfigDict:
    """A config file's `get_config()` (`FILE.py:ARG` calls get_config(ARG), as `--config` does on our commands) or a
    copy of a ConfigDict, with dotted fields set from `overrides`; ValueError naming a missing file or field."""
    if isinstance(config, ml_collections.ConfigDict):
        config = ml_collections.ConfigDict(config.to_dict())
    else:
        path, _, arg = str(config).partition(":")
        if not os.path.isfile(path):
            raise ValueError(f"config={config!r}: no such config file.")
        spec = importlib.util.spec_from_file_location(f"_lmms_config_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = module.get_config(arg) if arg else module.get_config()
    for key, value in (overrides or {}).items():
        *parents, name = key.split(".")
        node = config
        try:
            for part in parents:
                node = node[part]
            if name not in node:
                raise KeyError(name)
            node[name] = value
        except (KeyError, AttributeError, TypeError) as e:
            raise ValueError(f"model_args {key}={value!r}: the config has no such field or it does not take this "
                             f"value ({e}).") from None
    return config


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How one group of generation requests decodes: tokens to make, sampling, and the strings that end the text."""

    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    until: tuple[str, ...]


def decoding(gen_kwargs: dict | None, default_max_new_tokens: int) -> Decoding:
    """lmms-eval's generation_kwargs -> Decoding; ValueError for settings the generator does not have. Keys other
    models read for their own preprocessing (image_aspect_ratio, ...) are ignored."""
    kw = dict(gen_kwargs or {})
    for key, neutral in _REFUSED.items():
        if kw.get(key) not in (None, neutral):
            raise ValueError(f"generation_kwargs {key}={kw[key]!r} is not supported by mm1_jax's generator "
                             f"(only greedy decoding or sampling with temperature, top_p and top_k).")
    until = kw.get("until")
    if isinstance(until, (int, float)) and not isinstance(until, bool):
        # lmms-eval's --gen_kwargs parser (utils.handle_arg_string) reads until=184 as the number 184: its text
        until = str(until)
    until = until or ()
    if isinstance(until, str):
        until = (until,)
    if not all(isinstance(u, str) for u in until):
        raise ValueError(f"generation_kwargs until={until!r} must be a string or a list of strings.")
    temperature = float(kw.get("temperature") or 0.0)
    if kw.get("do_sample") is False or temperature < 0:
        temperature = 0.0
    elif kw.get("do_sample") and not temperature:
        temperature = 1.0  # transformers' default for do_sample without a temperature
    max_new = int(kw.get("max_new_tokens") or default_max_new_tokens)
    if max_new < 1:
        raise ValueError(f"generation_kwargs max_new_tokens={max_new} must be at least 1.")
    return Decoding(max_new, temperature, float(kw.get("top_p") or 1.0), int(kw.get("top_k") or 0),
                    tuple(u for u in until if u))


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """`text` up to (not including) the first occurrence of any of `until`."""
    end = min((text.find(u) for u in until if u in text), default=len(text))
    return text[:end]


class LmmsEvalModel(lmms):
    """An mm1_jax MM1 checkpoint or a converted mPLUG-Owl3 directory as an lmms-eval model (see the module)."""

    is_simple = True

    def __init__(self, config: str | ml_collections.ConfigDict, checkpoint: str | None = None, seed: int = 0,
                 batch_size: int | str = 16, max_new_tokens: int = 128, device: str | None = None,
                 max_batch_size: int | None = None, **overrides: Any):
        """`config` / `checkpoint` / `seed` as `python -m mm1_jax.eval` takes them; dotted `overrides` set config
        fields. `max_new_tokens` is used when a task does not say. `device` and `max_batch_size` (lmms-eval passes
        them to every model) are not used: JAX runs on its default backend, and batches are `batch_size`."""
        super().__init__()
        del device, max_batch_size
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r}: give a number of prompts (automatic sizing is not done).")
        bad = [k for k in overrides if "." not in k]
        if bad:
            raise ValueError(f"model_args {', '.join(sorted(bad))}: not an argument of the mm1_jax model (config, "
                             f"checkpoint, seed, max_new_tokens, or a dotted config field such as data.seq_len).")
        self.config = load_config(config, overrides)
        self.seed = int(seed)  # the random initialisation's (without a checkpoint) and sampling's
        self.batch_size = int(batch_size)
        self.default_max_new_tokens = int(max_new_tokens)
        self.params, self.ctx = results.load(self.config, str(checkpoint) if checkpoint else None, int(seed),
                                             self.batch_size)
        self.template = prompts.TEMPLATES[self.ctx.template]
        self.skipped: list[dict[str, Any]] = []  # prompts that could not be laid out: {task, doc_id, reason}
        self._load_ref = tasks.image_loader(self.ctx.image_size, self.ctx.norm, self.ctx.split)

    # ---------------------------------------------------------------------------------------------------------------
    # Prompts
    # ---------------------------------------------------------------------------------------------------------------
    def load_visual(self, visual: Any) -> Any:
        """One of lmms-eval's visuals -> the model's pixels, as our evaluation prepares an image file (whole image at
        the encoder's size, or split as in training); ValueError for videos and audio."""
        if isinstance(visual, Image.Image):
            img = visual.convert("RGB")
            if self.ctx.split is not None:
                return examples_lib.split_entries(img, self.ctx.split, self.ctx.image_size, self.ctx.norm)
            return images_lib.whole_image(img, self.ctx.image_size)
        if isinstance(visual, (str, os.PathLike)) and not str(visual).lower().endswith(_VIDEO_SUFFIXES):
            return self._load_ref(str(visual))
        if isinstance(visual, bytes):
            return self._load_ref(visual)
        raise ValueError(f"mm1_jax models take images; this task gave a {type(visual).__name__} "
                         f"({str(visual)[:80]!r}).")

    def build_prompt(self, context: str, visuals: Sequence[Any], reserve: int) -> prompts.Prompt:
        """Token ids and images for one request: the context as a question in the model's chat template, images at
        its `<image>` markers or first; the prompt fits the model's context less `reserve` new tokens."""
        if reserve >= self.ctx.max_tokens:
            raise ValueError(f"{reserve} new tokens leave no room for a prompt in the model's {self.ctx.max_tokens}"
                             f"-token context (data.seq_len); ask for fewer (gen_kwargs max_new_tokens).")
        visuals = list(visuals or [])
        markers = context.count(IMAGE_MARKER)
        if markers and markers != len(visuals):
            raise ValueError(f"the context has {markers} {IMAGE_MARKER} markers for {len(visuals)} images.")
        item = prompts.Item("lmms_eval", visuals, question=context)
        parts = prompts.item_parts(item, "vqa", self.load_visual, template=self.template)
        size = self.ctx.image_size
        return prompts.build_prompt([], parts, self.ctx.tok, self.ctx.k, max_tokens=self.ctx.max_tokens - reserve,
                                    max_images=self.ctx.max_images, image_shape=(size, size, 3), split=self.ctx.split,
                                    bos=self.template.bos, start=self.template.start)

    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _visuals(self, doc_to_visual: Callable | None, task: str, split: str, doc_id: int) -> list[Any]:
        if doc_to_visual is None:
            return []
        visuals = doc_to_visual(self._doc(task, split, doc_id))
        if visuals is None:
            return []
        return list(visuals) if isinstance(visuals, (list, tuple)) else [visuals]

    def _skip(self, task: Any, doc_id: Any, error: Exception) -> None:
        self.skipped.append({"task": task, "doc_id": doc_id, "reason": str(error)})
        eval_logger.warning(f"mm1_jax: {task} document {doc_id} skipped: {error}")

    def _batch(self, laid_out: Sequence[prompts.Prompt]) -> int:
        """Prompts per generator call: batch_size, fewer when prompts carry many images (as our evaluation does)."""
        most = max((len(p.images) for p in laid_out), default=1)
        return max(1, min(self.batch_size, self.ctx.max_batch_images // max(1, most)))

    def _stop_ids(self) -> tuple[int, ...]:
        """Tokens that end an answer whatever the task says: <eos>, <image>, and ChatML's <|im_end|>."""
        tok = self.ctx.tok
        end = tok.encode("<|im_end|>") if self.ctx.template == "chatml" else []
        return (tok.eos_id, tok.image_id) + (tuple(end) if len(end) == 1 else ())

    # ---------------------------------------------------------------------------------------------------------------
    # Generation
    # ---------------------------------------------------------------------------------------------------------------
    def generate_texts(self, laid_out: Sequence[prompts.Prompt], how: Decoding) -> list[str]:
        """Texts for prompts (one decoding): the batched cached generator, then each text cut at `how.until`."""
        if not laid_out:
            return []
        sampling = gen.Sampling(max_new_tokens=how.max_new_tokens, temperature=how.temperature, top_p=how.top_p,
                                top_k=how.top_k, stop_ids=self._stop_ids(), seed=self.seed)
        order = sorted(range(len(laid_out)), key=lambda i: -len(laid_out[i].tokens))  # similar lengths batch together
        batch = self._batch(laid_out)
        made = self.ctx.generator(batch)(self.params, [gen.Request(laid_out[i].tokens, laid_out[i].images)
                                                       for i in order], sampling)
        texts = [""] * len(laid_out)
        for i, (ids, _) in zip(order, made):
            texts[i] = cut_at_stops(self.ctx.tok.decode(ids, mark_images=False), how.until)
        return texts

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """lmms-eval's generation requests; requests with the same generation_kwargs share generator calls."""
        out = [""] * len(requests)
        groups: dict[Decoding, list[tuple[int, prompts.Prompt]]] = {}
        for n, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args[:6]
            how = decoding(gen_kwargs, self.default_max_new_tokens)
            try:
                prompt = self.build_prompt(context, self._visuals(doc_to_visual, task, split, doc_id),
                                           how.max_new_tokens)
            except (OSError, ValueError) as e:
                self._skip(task, doc_id, e)
                continue
            groups.setdefault(how, []).append((n, prompt))
        for how, members in groups.items():
            for (n, _), text in zip(members, self.generate_texts([p for _, p in members], how)):
                out[n] = text
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Several rounds per document: round 0 answers the context; round r > 0 answers what the task's doc_to_text
        returns given the answers so far, until it says done. Each document's answers, one per round (or as the
        task's doc_to_text last returned them). A round's prompts go through the generator together."""
        out: list[list[str]] = [[] for _ in requests]
        state = []  # per request: [doc, visuals, context, previous_round_info, decoding]
        for request in requests:
            context, gen_kwargs, doc_to_visual, _, doc_id, task, split = request.args[:7]
            state.append([self._doc(task, split, doc_id), self._visuals(doc_to_visual, task, split, doc_id), context,
                          None, decoding(gen_kwargs, self.default_max_new_tokens)])
        active, round_idx = list(range(len(requests))), 0
        while active:
            groups: dict[Decoding, list[tuple[int, prompts.Prompt]]] = {}
            for n in active:
                doc, visuals, context, info, how = state[n]
                _, _, _, doc_to_text, doc_id, task, _ = requests[n].args[:7]
                if round_idx:
                    visuals, context, done, answers, info = doc_to_text(
                        doc, previous_output=list(out[n]), round_idx=round_idx, previous_round_info=info)
                    out[n] = list(answers)
                    state[n][1:4] = [visuals, context, info]
                    if done:
                        continue
                try:
                    prompt = self.build_prompt(context, visuals or [], how.max_new_tokens)
                except (OSError, ValueError) as e:
                    self._skip(task, doc_id, e)
                    continue
                groups.setdefault(how, []).append((n, prompt))
            active = []
            for how, members in groups.items():
                for (n, _), text in zip(members, self.generate_texts([p for _, p in members], how)):
                    out[n].append(text)
                    active.append(n)
            active.sort()
            round_idx += 1
        return out

    # ---------------------------------------------------------------------------------------------------------------
    # Log-likelihood
    # ---------------------------------------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """Per request, GenerationResult(text=(mean loss, is_greedy)) (see the module on both): the loss is -sum of
        log p(continuation tokens | prompt) / their number, lower is more likely, as lmms-eval's multiple-choice
        scoring expects; is_greedy says whether greedy decoding makes exactly those tokens."""
        out: list[tuple[float, bool]] = [(math.inf, False)] * len(requests)
        kept, laid_out, conts = [], [], []
        for n, request in enumerate(requests):
            args = request.args
            context, target = args[0], args[1]
            doc_to_visual, doc_id, task, split = args[2:6] if len(args) >= 6 else (None, None, None, None)
            continuation = target if isinstance(target, str) else target(self._doc(task, split, doc_id))
            ids = self.ctx.tok.encode(str(continuation))
            try:
                if not ids:
                    raise ValueError(f"the continuation {continuation!r} has no tokens.")
                prompt = self.build_prompt(context, self._visuals(doc_to_visual, task, split, doc_id), len(ids))
            except (OSError, ValueError) as e:
                self._skip(task if task is not None else request.task_name, doc_id, e)
                continue
            kept.append(n)
            laid_out.append(prompt)
            conts.append(ids)
        if not kept:
            return [GenerationResult(text=pair) for pair in out]
        batch = self._batch(laid_out)
        reqs = [gen.Request(p.tokens, p.images) for p in laid_out]
        scores = gen.score_continuations(self.ctx.model, self.params, reqs, conts, pad_id=self.ctx.tok.pad_id,
                                         batch_size=batch, **self.ctx.inputs)
        greedy = self.ctx.generator(batch)(self.params, reqs,
                                           gen.Sampling(max_new_tokens=max(len(c) for c in conts)))
        for n, score, cont, (ids, _) in zip(kept, scores, conts, greedy):
            out[n] = (-float(score) / len(cont), [int(t) for t in ids[:len(cont)]] == [int(t) for t in cont])
        return [GenerationResult(text=pair) for pair in out]


def main() -> None:
    """lmms-eval's command line with `--model mm1_jax` registered."""
    register()
    from lmms_eval.cli.dispatch import main as lmms_eval_main  # pylint: disable=import-outside-toplevel

    lmms_eval_main()


if __name__ == "__main__":
    main()
    sys.exit(0)
