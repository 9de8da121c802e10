"""Metrics that are not one benchmark's own: CIDEr-D (coco-caption's), the embedded benchmark's answers and boxes.

Each benchmark's official scorer lives in `mm1_jax.eval.scorers` (VQA accuracy, ANLS, relaxed accuracy, GQA,
MMBench's CircularEval, Ferret's RefCOCO); `mm1_jax.eval.datasets` says which task uses which.

CIDEr-D (`cider`) matches pycocoevalcap's `Cider` on the same pre-tokenised strings (whitespace-split), including
its details: n-grams 1..4; document frequency over each image's set of references; idf = log(#images) -
log(max(1, df)); tf-idf vectors per n; the candidate's weight clipped to the reference's (min(c, r) * r) over the
product of the unclipped norms; a Gaussian length penalty exp(-delta^2 / (2 * 6^2)) whose "length" is pycocoevalcap's:
the number of bigrams, i.e. words - 1 (0 for one word); averaged over n and references, times 10. The captions are
tokenised as coco-caption does (`tokenize_captions`: its PTB tokenizer, Java) when that can run, else by a regex.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence

from mm1_jax.data import coordinates
from mm1_jax.eval.scorers.vqa import normalize_vqa_answer


# --------------------------------------------------------------------------------------------------------------------
# CIDEr-D
# --------------------------------------------------------------------------------------------------------------------
def _ngrams(sentence: str, n: int = 4) -> Counter:
    words = sentence.split()
    return Counter(tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def cider(references: Mapping[str, Sequence[str]], candidates: Mapping[str, str], n: int = 4,
          sigma: float = 6.0) -> tuple[float, dict[str, float]]:
    """Corpus CIDEr-D (x10 scale) and per-image scores; inputs are already tokenised (lowercase words, spaces)."""
    ids = list(references)
    if set(ids) != set(candidates):
        raise ValueError("cider: references and candidates must have the same image ids.")
    refs = {i: [_ngrams(r, n) for r in references[i]] for i in ids}
    df = Counter(g for i in ids for g in set().union(*[set(r) for r in refs[i]]))
    log_images = math.log(float(len(ids)))

    def vector(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec = [{} for _ in range(n)]
        for gram, tf in counts.items():
            vec[len(gram) - 1][gram] = tf * (log_images - math.log(max(1.0, df[gram])))
        norms = [math.sqrt(sum(v * v for v in vec[k].values())) for k in range(n)]
        bigrams = sum(tf for gram, tf in counts.items() if len(gram) == 2)  # pycocoevalcap's "length"
        return vec, norms, bigrams

    scores = {}
    for i in ids:
        cand, cand_norm, cand_len = vector(_ngrams(candidates[i], n))
        total = 0.0
        for ref_counts in refs[i]:
            ref, ref_norm, ref_len = vector(ref_counts)
            penalty = math.exp(-((cand_len - ref_len) ** 2) / (2 * sigma**2))
            for k in range(n):
                dot = sum(min(v, ref[k].get(g, 0.0)) * ref[k].get(g, 0.0) for g, v in cand[k].items())
                if cand_norm[k] and ref_norm[k]:
                    dot /= cand_norm[k] * ref_norm[k]
                total += dot * penalty / n
        scores[i] = 10.0 * total / len(refs[i])
    return (sum(scores.values()) / len(scores) if scores else 0.0), scores


def tokenize_for_cider(text: str) -> str:
    """Lowercase words with punctuation dropped (the fallback when the PTB tokenizer cannot run: it needs Java)."""
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))


CAPTION_TOKENIZERS = ("auto", "ptb", "regex")


def ptb_available() -> bool:
    """Whether coco-caption's PTB tokenizer can run here (pycocoevalcap installed, Java on the PATH)."""
    return shutil.which("java") is not None and importlib.util.find_spec("pycocoevalcap") is not None


def tokenize_captions(texts: Sequence[str], tokenizer: str = "auto") -> tuple[list[str], str]:
    """(tokenised texts, the tokenizer used). 'ptb' is the official coco-caption tokenisation (pycocoevalcap's
    PTBTokenizer: Stanford CoreNLP's PTB tokenizer, lower-cased, punctuation removed), what published CIDEr scores
    use; 'regex' is `tokenize_for_cider`; 'auto' takes 'ptb' when it can run."""
    if tokenizer not in CAPTION_TOKENIZERS:
        raise ValueError(f"eval.caption_tokenizer={tokenizer!r} is not one of {', '.join(CAPTION_TOKENIZERS)}.")
    if tokenizer == "regex" or (tokenizer == "auto" and not ptb_available()) or not texts:
        return [tokenize_for_cider(t) for t in texts], "regex"
    if not ptb_available():
        raise ValueError("eval.caption_tokenizer='ptb' needs pycocoevalcap (pip install '.[test]') and Java.")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # pylint: disable=import-outside-toplevel

    with _quiet_stderr():  # the Java process reports its token count on file descriptor 2
        out = PTBTokenizer().tokenize({str(i): [{"caption": t}] for i, t in enumerate(texts)})
    return [out[str(i)][0] for i in range(len(texts))], "ptb"


@contextlib.contextmanager
def _quiet_stderr():
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --------------------------------------------------------------------------------------------------------------------
# The embedded benchmark's answers
# --------------------------------------------------------------------------------------------------------------------
def embedded_vqa_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """The embedded benchmark's VQA accuracy (ours): VQAv2's min(#matching humans / 3, 1) over the leave-one-out
    subsets, every answer normalised as vqaEval.py normalises (always, also when the humans agree)."""
    if not human_answers:
        raise ValueError("embedded_vqa_accuracy: a question has no human answers.")
    pred, humans = normalize_vqa_answer(prediction), [normalize_vqa_answer(a) for a in human_answers]
    accs = [min(1.0, sum(h == pred for j, h in enumerate(humans) if j != i) / 3.0) for i in range(len(humans))]
    return sum(accs) / len(accs)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised answer (the embedded benchmark's, ours)."""
    pred = normalize_vqa_answer(prediction)
    return float(any(pred == normalize_vqa_answer(a) for a in answers))


# --------------------------------------------------------------------------------------------------------------------
# Boxes in the embedded benchmark's format and Ferret's (Ferret's scoring: `scorers.refexp`), last-word accuracy
# --------------------------------------------------------------------------------------------------------------------
# How a model writes a box: coordinates on a grid of `scale` steps per side, in a text template, after a question.
# mm1_jax: the embedded data's (`data.synthetic.grounding_record`). ferret: Ferret (arXiv 2310.07704) writes
# "[x1, y1, x2, y2]" on a 0-999 grid, and MM1.5 (arXiv 2409.20566, Sec. 3) follows Ferret for referring and
# grounding; its grid, text and pixel rules are `mm1_jax.data.coordinates`'s (the one owner, Ferret-UI's release
# rule); the exact prompt wording MM1.5 uses is not given in the papers (ours is an assumption).
BOX_FORMATS = {
    "mm1_jax": dict(scale=100, template="<box> {} , {} , {} , {} </box>", question="where is the {} ?"),
    "ferret": dict(scale=coordinates.GRID, template=coordinates.BOX_TEXT,
                   question="What are the coordinates of {} in the image?"),
}


def box_to_text(box: Sequence[float], width: float, height: float, fmt: str = "mm1_jax") -> str:
    """A pixel box (x1, y1, x2, y2) written in format `fmt` (grid coordinates, rounded down; ferret:
    `coordinates.box_to_text`, the corners clamped into the image first)."""
    if fmt == "ferret":
        return coordinates.box_to_text(box, width, height)
    scale = BOX_FORMATS[fmt]["scale"]
    grid = [min(scale - 1, int(v * scale // side)) for v, side in zip(box, (width, height, width, height))]
    return BOX_FORMATS[fmt]["template"].format(*grid)


def box_from_text(text: str, width: float, height: float, fmt: str = "mm1_jax"
                  ) -> tuple[float, float, float, float] | None:
    """The first box in generated text, back in pixels (mm1_jax: a grid cell's coordinate maps to the cell's start;
    ferret: the first well-formed "[x1, y1, x2, y2]", `coordinates.parse_boxes`)."""
    if fmt == "ferret":
        boxes = coordinates.parse_boxes(text, width, height)
        return boxes[0] if boxes else None
    grid = parse_box(text)
    if grid is None:
        return None
    scale = BOX_FORMATS[fmt]["scale"]
    return tuple(v * side / scale for v, side in zip(grid, (width, height, width, height)))


def last_word_accuracy(prediction: str, target: str) -> float:
    """LAMBADA (arXiv 1606.06031): 1.0 when the generated continuation's first word is the passage's last word
    (punctuation around it ignored)."""
    words = prediction.strip().split()
    strip = lambda w: w.strip(".,;:!?\"'“”’")  # noqa: E731
    return float(bool(words) and strip(words[0]) == strip(target.strip()))


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first four numbers after <box> (or anywhere) in generated text, or None."""
    tail = text.split("<box>", 1)[-1]
    numbers = re.findall(r"-?\d+(?:\.\d+)?", tail)
    return tuple(float(v) for v in numbers[:4]) if len(numbers) >= 4 else None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes with inclusive integer-grid corners treated as continuous."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0
