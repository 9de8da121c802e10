"""The papers' metrics: CIDEr-D, VQA accuracy, exact match, ANLS, relaxed accuracy, circular evaluation, box IoU.

CIDEr-D (`cider`) matches pycocoevalcap's `Cider` on the same pre-tokenised strings (whitespace-split), including
its details: n-grams 1..4; document frequency over each image's set of references; idf = log(#images) -
log(max(1, df)); tf-idf vectors per n; the candidate's weight clipped to the reference's (min(c, r) * r) over the
product of the unclipped norms; a Gaussian length penalty exp(-delta^2 / (2 * 6^2)) whose "length" is pycocoevalcap's:
the number of bigrams, i.e. words - 1 (0 for one word); averaged over n and references, times 10. The captions are
tokenised as coco-caption does (`tokenize_captions`: its PTB tokenizer, Java) when that can run, else by a regex.

VQA accuracy (`vqa_accuracy`) is the official one: every answer normalised (punctuation, number words -> digits,
articles dropped, contractions restored), then min(#humans who gave it / 3, 1) averaged over the 10 leave-one-out
subsets of the human answers. The official script normalises only when the humans disagree; we normalise always
(as most harnesses do: generated answers differ in case and punctuation from humans'); `official_quirk=True`
reproduces the script exactly.
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
# VQA accuracy
# --------------------------------------------------------------------------------------------------------------------
_CONTRACTIONS = dict(pair.split(":") for pair in (  # noqa: SIM905 (a compact table of the official pairs)
    "aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't couldn'tve:couldn't've "
    "couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't hadnt:hadn't hadnt've:hadn't've "
    "hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd hed've:he'd've he'dve:he'd've hes:he's howd:how'd "
    "howll:how'll hows:how's Id've:I'd've I'dve:I'd've Im:I'm Ive:I've isnt:isn't itd:it'd itd've:it'd've "
    "it'dve:it'd've itll:it'll let's:let's maam:ma'am mightnt:mightn't mightnt've:mightn't've "
    "mightn'tve:mightn't've mightve:might've mustnt:mustn't mustve:must've neednt:needn't notve:not've "
    "oclock:o'clock oughtnt:oughtn't ow's'at:'ow's'at 'ows'at:'ow's'at 'ow'sat:'ow's'at shant:shan't "
    "shed've:she'd've she'dve:she'd've she's:she's shouldve:should've shouldnt:shouldn't "
    "shouldnt've:shouldn't've shouldn'tve:shouldn't've somebody'd:somebodyd somebodyd've:somebody'd've "
    "somebody'dve:somebody'd've somebodyll:somebody'll somebodys:somebody's someoned:someone'd "
    "someoned've:someone'd've someone'dve:someone'd've someonell:someone'll someones:someone's "
    "somethingd:something'd somethingd've:something'd've something'dve:something'd've somethingll:something'll "
    "thats:that's thered:there'd thered've:there'd've there'dve:there'd've therere:there're theres:there's "
    "theyd:they'd theyd've:they'd've they'dve:they'd've theyll:they'll theyre:they're theyve:they've "
    "twas:'twas wasnt:wasn't wed've:we'd've we'dve:we'd've weve:we've werent:weren't whatll:what'll "
    "whatre:what're whats:what's whatve:what've whens:when's whered:where'd wheres:where's whereve:where've "
    "whod:who'd whod've:who'd've who'dve:who'd've wholl:who'll whos:who's whove:who've whyll:why'll "
    "whyre:why're whys:why's wont:won't wouldve:would've wouldnt:wouldn't wouldnt've:wouldn't've "
    "wouldn'tve:wouldn't've yall:y'all yall'll:y'all'll y'allll:y'all'll yall'd've:y'all'd've "
    "y'alld've:y'all'd've y'all'dve:y'all'd've youd:you'd youd've:you'd've you'dve:you'd've youll:you'll "
    "youre:you're youve:you've").split())
_NUMBERS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}  # noqa: SIM905
_NUMBERS["none"] = "0"
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # the official pattern, look-behind typo included
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")


def normalize_vqa_answer(answer: str) -> str:
    """The official VQA answer normalisation: punctuation, then digits / articles / contractions."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _PUNCT:
        if p + " " in text or " " + p in text or _COMMA_IN_NUMBER.search(text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD.sub("", out)
    words = [_NUMBERS.get(w, w) for w in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_accuracy(prediction: str, human_answers: Sequence[str], official_quirk: bool = False) -> float:
    """min(#matching humans / 3, 1), averaged over the leave-one-out subsets of the human answers."""
    if not human_answers:
        raise ValueError("vqa_accuracy: a question has no human answers.")
    clean = lambda s: s.replace("\n", " ").replace("\t", " ").strip()
    humans, pred = [clean(a) for a in human_answers], clean(prediction)
    if not official_quirk or len(set(humans)) > 1:
        humans, pred = [normalize_vqa_answer(a) for a in humans], normalize_vqa_answer(pred)
    accs = []
    for i in range(len(humans)):
        matches = sum(h == pred for j, h in enumerate(humans) if j != i)
        accs.append(min(1.0, matches / 3.0))
    return sum(accs) / len(accs)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised answer."""
    pred = normalize_vqa_answer(prediction)
    return float(any(pred == normalize_vqa_answer(a) for a in answers))


# --------------------------------------------------------------------------------------------------------------------
# Text-rich answers: ANLS (DocVQA, InfoVQA) and relaxed accuracy (ChartQA)
# --------------------------------------------------------------------------------------------------------------------
def _levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    """Average Normalized Levenshtein Similarity of one prediction (Biten et al., ST-VQA, arXiv 1905.13648; the
    DocVQA and InfoVQA metric): max over the answers of 1 - NL when the normalised edit distance NL = lev / max(len)
    is below `threshold`, else 0; answers compared lower-cased with runs of white space folded. A task's ANLS is
    the mean over its questions."""
    fold = lambda s: " ".join(s.strip().lower().split())  # noqa: E731
    pred, best = fold(prediction), 0.0
    for answer in answers:
        truth = fold(answer)
        longest = max(len(pred), len(truth))
        distance = _levenshtein(pred, truth) / longest if longest else 0.0
        best = max(best, 1.0 - distance if distance < threshold else 0.0)
    return best


def relaxed_accuracy(prediction: str, answers: Sequence[str], tolerance: float = 0.05) -> float:
    """ChartQA's relaxed accuracy (Masry et al., arXiv 2203.10244, after Methani et al.'s PlotQA): a numeric answer
    is right within `tolerance` relative error of a non-zero target ('12%' reads as 0.12), any other answer by exact
    match ignoring case and surrounding white space."""

    def number(text: str) -> float | None:
        text = text.strip()
        try:
            return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            return None

    for answer in answers:
        pred, truth = number(prediction), number(answer)
        if pred is not None and truth:  # a zero target is compared as text
            if abs(pred - truth) / abs(truth) <= tolerance:
                return 1.0
        elif prediction.strip().lower() == answer.strip().lower():
            return 1.0
    return 0.0


# --------------------------------------------------------------------------------------------------------------------
# Multiple choice, circular evaluation, boxes
# --------------------------------------------------------------------------------------------------------------------
def circular_accuracy(correct_by_question: Mapping[str, Sequence[bool]]) -> float:
    """MMBench's circular evaluation: a question counts only when every rotation of its options was right."""
    if not correct_by_question:
        return 0.0
    return sum(all(v) for v in correct_by_question.values()) / len(correct_by_question)


def rotations(options: Sequence[str]) -> list[list[str]]:
    """The n circular shifts of the options (MMBench's CircularEval presents each)."""
    return [list(options[i:]) + list(options[:i]) for i in range(len(options))]


# How a model writes a box: coordinates on a grid of `scale` steps per side, in a text template, after a question.
# mm1_jax: the embedded data's (`data.synthetic.grounding_record`). ferret: Ferret (arXiv 2310.07704) writes
# "[x1, y1, x2, y2]" normalised to 0-999, and MM1.5 (arXiv 2409.20566, Sec. 3) follows Ferret for referring and
# grounding; the exact prompt wording MM1.5 uses is not given in the papers (ours is an assumption).
BOX_FORMATS = {
    "mm1_jax": dict(scale=100, template="<box> {} , {} , {} , {} </box>", question="where is the {} ?"),
    "ferret": dict(scale=1000, template="[{}, {}, {}, {}]", question="What are the coordinates of {} in the image?"),
}


def box_to_text(box: Sequence[float], width: float, height: float, fmt: str = "mm1_jax") -> str:
    """A pixel box (x1, y1, x2, y2) written in format `fmt` (grid coordinates, rounded down)."""
    scale = BOX_FORMATS[fmt]["scale"]
    grid = [min(scale - 1, int(v * scale // side)) for v, side in zip(box, (width, height, width, height))]
    return BOX_FORMATS[fmt]["template"].format(*grid)


def box_from_text(text: str, width: float, height: float, fmt: str = "mm1_jax"
                  ) -> tuple[float, float, float, float] | None:
    """The first box in generated text, back in pixels (a grid cell's coordinate maps to the cell's start)."""
    grid = parse_box(text)
    if grid is None:
        return None
    scale = BOX_FORMATS[fmt]["scale"]
    return tuple(v * side / scale for v, side in zip(grid, (width, height, width, height)))


def parse_letter(text: str, count: int) -> int | None:
    """The option a generated answer names by letter ('B', 'B.', '(B) cat', 'The answer is B'), or None. MMBench's
    own matcher falls back to asking ChatGPT when no letter is found; we count that as wrong."""
    letters = "ABCDEFGHIJ"[:count]
    text = text.strip()
    first = re.match(rf"^\(?([{letters}])(?:[).:,\s]|$)", text)
    found = first or re.search(rf"\b([{letters}])\b", text)
    return letters.index(found.group(1)) if found else None


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
