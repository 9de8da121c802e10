"""VQA accuracy as each benchmark's own evaluation code computes it: VQAv2, OK-VQA, VizWiz-VQA, TextVQA.

All four score a prediction against the 10 human answers with the same leave-one-out rule: for each human i,
min(1, #(other humans whose answer equals the prediction) / 3); the question's accuracy is the mean over the 10 (so
1, 2, 3, >=4 matching humans give 0.3, 0.6, 0.9, 1.0). They differ in which strings are normalised, and how.
Values are in [0, 1]; the official scripts report 100 * value: per question round(100 * acc, 2), overall
round(100 * mean of the unrounded per-question values, 2). With 10 answers every per-question value is a multiple of
0.1, so the per-question rounding only removes float noise and never reaches the overall figure.

VQAv2 / OK-VQA, GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py (master, commit a013f00 of
2021-03-11, "Fixed processing answers bug"): every answer and the prediction have "\\n" and "\\t" replaced by a space
and are stripped. Only when the 10 (cleaned) human answers are not all the same string (`len(set(...)) > 1`) are the
humans AND the prediction normalised (`normalize_vqa_answer`); when all 10 agree the prediction must equal their
answer exactly ("Yes" scores 0 against ten "yes"). (Before that commit the script normalised the prediction always
and the humans' punctuation only, never their digits or articles.) OK-VQA ships its annotations in the VQA format
(5 answers, each given twice) and has no scorer of its own that we could find; `okvqa_accuracy` is the VQA script's.
  normalize_vqa_answer = processPunctuation, then processDigitArticle:
  processPunctuation: for each of ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! : delete it when the input has it
    followed or preceded by a space, or when the input has a digit-comma-digit anywhere (regex (\\d)(\\,)(\\d));
    else replace it by a space. Then periods not followed by a digit are deleted (regex (?!<=\\d)(\\.)(?!\\d), whose
    look-behind is a typo that never fires, so "5." -> "5" but "3.5" stays); `re.UNICODE` is passed as the
    positional count of `sub`, so at most 32 periods go.
  processDigitArticle: lower-case, split on white space, number words none/zero..ten -> 0..10, drop a/an/the, then
    the contraction table ("dont" -> "don't"; its capitalised keys Im, Ive, Id've never match after lower-casing),
    joined by single spaces.

VizWiz-VQA, the VizWiz API's vqaEval.py (`__author__='Qing Li'`, distributed from vizwiz.org; read from a copy in
a public repository; we could not fetch vizwiz.org's own download): the prediction is cleaned and normalised as
above, ALWAYS; the human answers are compared as stored, with no cleaning or normalisation at all. The leave-one-out
is over positions; answer_confidence is not used; "unanswerable" is an ordinary answer string (the API's separate
unanswerability AP / F1 uses a predicted `answerable` flag, not this accuracy). Its contraction table differs from
VQA's: most of its apostrophes are typographic (U+2019), so "dont" -> "don\u2019t", not "don't".

TextVQA, facebookresearch/mmf mmf/utils/m4c_evaluators.py (EvalAIAnswerProcessor, TextVQAAccuracyEvaluator; the same
file in the `mmf` 1.0.0rc10 package): the prediction and every human answer always go through
`textvqa_process_answer`: lower-case; delete every "," and "?"; "'s" -> " 's"; strip; "\\n"/"\\t" -> space; strip;
processPunctuation with the comma regex (?<=\\d)(\\,)+(?=\\d); processDigitArticle. The evaluator asserts 10 answers
and scores the prediction by leave-one-out over positions among the processed answers (0 if none match).

Harness conventions (`convention=`):
  "lmms_eval" (EvolvingLMMs-Lab/lmms-eval, lmms_eval/tasks/{vqav2,ok_vqa,vizwiz_vqa,textvqa}/utils.py and
    _task_utils/vqa_eval_metric.py): VQAv2 cleans, then processPunctuation (mmf comma regex) + processDigitArticle on
    the humans and the prediction ALWAYS (no all-agree exception); OK-VQA, VizWiz and TextVQA run the whole
    EvalAIAnswerProcessor (`textvqa_process_answer`) on both sides. Leave-one-out as above; statistics.mean.
  "vlmevalkit" (open-compass/VLMEvalKit, vlmeval/dataset/utils/vqa_eval.py process_line(method='vqa_score'),
    process_answer, hit_calculate; vlmeval/smp/misc.py process_punctuation): both sides always cleaned and
    normalised, with the period regex (?<!\\d)\\.(?!\\d) (a real look-behind: "5." keeps its period); TextVQA,
    VizWiz and any other VQA set take this rule (VLMEvalKit has no VQAv2 or OK-VQA dataset); numpy mean.
Every convention needs at least one human answer (ValueError otherwise).
"""
from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence

import numpy as np

CONVENTIONS = ("official", "lmms_eval", "vlmevalkit")

# The contraction table of vqaEval.py (identical in mmf, lmms-eval and VLMEvalKit), one "key>value" pair per entry.
_CONTRACTION_PAIRS = """
aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've couldnt've>couldn't've
didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've hadn'tve>hadn't've hasnt>hasn't
havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's howd>how'd howll>how'll hows>how's Id've>I'd've
I'dve>I'd've Im>I'm Ive>I've isnt>isn't itd>it'd itd've>it'd've it'dve>it'd've itll>it'll let's>let's maam>ma'am
mightnt>mightn't mightnt've>mightn't've mightn'tve>mightn't've mightve>might've mustnt>mustn't mustve>must've
neednt>needn't notve>not've oclock>o'clock oughtnt>oughtn't ow's'at>'ow's'at 'ows'at>'ow's'at 'ow'sat>'ow's'at
shant>shan't shed've>she'd've she'dve>she'd've she's>she's shouldve>should've shouldnt>shouldn't
shouldnt've>shouldn't've shouldn'tve>shouldn't've somebody'd>somebodyd somebodyd've>somebody'd've
somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's someoned>someone'd someoned've>someone'd've
someone'dve>someone'd've someonell>someone'll someones>someone's somethingd>something'd
somethingd've>something'd've something'dve>something'd've somethingll>something'll thats>that's thered>there'd
thered've>there'd've there'dve>there'd've therere>there're theres>there's theyd>they'd theyd've>they'd've
they'dve>they'd've theyll>they'll theyre>they're theyve>they've twas>'twas wasnt>wasn't wed've>we'd've
we'dve>we'd've weve>we've werent>weren't whatll>what'll whatre>what're whats>what's whatve>what've whens>when's
whered>where'd wheres>where's whereve>where've whod>who'd whod've>who'd've who'dve>who'd've wholl>who'll whos>who's
whove>who've whyll>why'll whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't
wouldnt've>wouldn't've wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll yall'd've>y'all'd've
y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've you'dve>you'd've youll>you'll youre>you're
youve>you've
"""
CONTRACTIONS: dict[str, str] = dict(pair.split(">") for pair in _CONTRACTION_PAIRS.split())

# The VizWiz API's copy of that table has typographic apostrophes (U+2019) almost everywhere: in every key but these
# two, and in every value but those of the eight keys after them.
_VIZWIZ_ASCII_KEYS = {"couldn'tve", "hadn'tve"}
_VIZWIZ_ASCII_VALUES = {"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"}
VIZWIZ_CONTRACTIONS: dict[str, str] = {
    (k if k in _VIZWIZ_ASCII_KEYS else k.replace("'", "\u2019")):
        (v if k in _VIZWIZ_ASCII_VALUES else v.replace("'", "\u2019"))
    for k, v in CONTRACTIONS.items()
}

NUMBER_WORDS: dict[str, str] = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
               "!")

_COMMA_VQA = re.compile(r"(\d)(\,)(\d)")  # vqaEval.py, the VizWiz API, VLMEvalKit
_COMMA_MMF = re.compile(r"(?<=\d)(\,)+(?=\d)")  # mmf's EvalAIAnswerProcessor, lmms-eval
_PERIOD_VQA = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: "(?!<=\d)" is a look-ahead that always holds before a "."
_PERIOD_VLMEVALKIT = re.compile(r"(?<!\d)\.(?!\d)")
_PERIOD_COUNT = int(re.UNICODE)  # the scripts pass re.UNICODE (32) where Pattern.sub takes its count


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r} is not one of {', '.join(CONVENTIONS)}.")


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str, comma: re.Pattern = _COMMA_VQA, period: re.Pattern = _PERIOD_VQA) -> str:
    """vqaEval.py's processPunctuation (GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py); `comma`
    and `period` select the variants of mmf / lmms-eval (comma) and VLMEvalKit (period)."""
    delete_all = comma.search(text) is not None
    out = text
    for p in PUNCTUATION:  # the tests look at the input, the replacements at the output so far
        out = out.replace(p, "" if delete_all or p + " " in text or " " + p in text else " ")
    return period.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str, contractions: dict[str, str] = CONTRACTIONS) -> str:
    """vqaEval.py's processDigitArticle: lower-case words, number words to digits, articles dropped, contractions
    restored (GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py)."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(contractions.get(w, w) for w in words if w not in ARTICLES)


def normalize_vqa_answer(answer: str) -> str:
    """The VQA script's full normalisation (clean, processPunctuation, processDigitArticle), which it applies only when
    the humans disagree (GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py)."""
    return process_digit_article(process_punctuation(_clean(answer)))


def vizwiz_normalize_answer(answer: str) -> str:
    """The VizWiz API's normalisation of a prediction: the VQA one with the API's own contraction table (its
    vqaEval.py, distributed from vizwiz.org)."""
    return process_digit_article(process_punctuation(_clean(answer)), VIZWIZ_CONTRACTIONS)


def textvqa_process_answer(answer: str) -> str:
    """mmf's EvalAIAnswerProcessor, applied to TextVQA predictions and answers alike (facebookresearch/mmf
    mmf/utils/m4c_evaluators.py; lmms-eval's _task_utils/vqa_eval_metric.py is the same class)."""
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _clean(text)
    return process_digit_article(process_punctuation(text, comma=_COMMA_MMF))


def vlmevalkit_process_answer(answer: str) -> str:
    """VLMEvalKit's process_answer (open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py): the VQA normalisation
    with a period regex that keeps a period after a digit."""
    return process_digit_article(process_punctuation(_clean(answer), period=_PERIOD_VLMEVALKIT))


def _lmms_vqav2_process(answer: str) -> str:
    # lmms_eval/tasks/vqav2/utils.py: clean, then the processor's process_punctuation and process_digit_article only
    return process_digit_article(process_punctuation(_clean(answer), comma=_COMMA_MMF))


def _leave_one_out(prediction: str, answers: Sequence[str], mean: Callable[[list[float]], float]) -> float:
    if not answers:
        raise ValueError("VQA accuracy: the question has no human answers.")
    accs = []
    for i in range(len(answers)):
        matches = sum(1 for j, a in enumerate(answers) if j != i and a == prediction)
        accs.append(min(1.0, float(matches) / 3))
    return mean(accs)


def _sum_mean(values: list[float]) -> float:
    return float(sum(values)) / len(values)  # the official scripts' float(sum(gtAcc)) / len(gtAcc)


def _np_mean(values: list[float]) -> float:
    return float(np.mean(values))


def _score(prediction: str, answers: Sequence[str], process: Callable[[str], str],
           mean: Callable[[list[float]], float]) -> float:
    return _leave_one_out(process(prediction), [process(a) for a in answers], mean)


def vqa_accuracy(prediction: str, answers: Sequence[str], convention: str = "official") -> float:
    """VQAv2 accuracy of one prediction against the human answers, in [0, 1]; official: GT-Vision-Lab/VQA
    PythonEvaluationTools/vqaEvaluation/vqaEval.py (normalises only when the humans disagree)."""
    _check(convention)
    if convention == "lmms_eval":
        return _score(prediction, answers, _lmms_vqav2_process, statistics.mean)
    if convention == "vlmevalkit":
        return _score(prediction, answers, vlmevalkit_process_answer, _np_mean)
    humans, pred = [_clean(a) for a in answers], _clean(prediction)
    if len(set(humans)) > 1:
        humans, pred = [normalize_vqa_answer(a) for a in humans], normalize_vqa_answer(pred)
    return _leave_one_out(pred, humans, _sum_mean)


def okvqa_accuracy(prediction: str, answers: Sequence[str], convention: str = "official") -> float:
    """OK-VQA accuracy, in [0, 1]: official is the VQA script's (vqa_accuracy); lmms-eval's ok_vqa task differs from
    its vqav2 one (lmms_eval/tasks/ok_vqa/utils.py: the whole EvalAIAnswerProcessor on both sides)."""
    _check(convention)
    if convention == "lmms_eval":
        return _score(prediction, answers, textvqa_process_answer, statistics.mean)
    return vqa_accuracy(prediction, answers, convention)


def vizwiz_accuracy(prediction: str, answers: Sequence[str], convention: str = "official") -> float:
    """VizWiz-VQA accuracy, in [0, 1]; official: the VizWiz API's vqaEval.py (prediction normalised, human answers
    compared as stored, leave-one-out over the 10)."""
    _check(convention)
    if convention == "lmms_eval":  # lmms_eval/tasks/vizwiz_vqa/utils.py
        return _score(prediction, answers, textvqa_process_answer, statistics.mean)
    if convention == "vlmevalkit":
        return _score(prediction, answers, vlmevalkit_process_answer, _np_mean)
    return _leave_one_out(vizwiz_normalize_answer(prediction), list(answers), _sum_mean)


def textvqa_accuracy(prediction: str, answers: Sequence[str], convention: str = "official") -> float:
    """TextVQA accuracy, in [0, 1]; official: facebookresearch/mmf mmf/utils/m4c_evaluators.py
    TextVQAAccuracyEvaluator (both sides through EvalAIAnswerProcessor; exactly 10 answers)."""
    _check(convention)
    if convention == "lmms_eval":  # lmms_eval/tasks/textvqa/utils.py
        return _score(prediction, answers, textvqa_process_answer, statistics.mean)
    if convention == "vlmevalkit":
        return _score(prediction, answers, vlmevalkit_process_answer, _np_mean)
    if len(answers) != 10:
        raise ValueError(f"textvqa_accuracy: the official evaluator needs 10 answers, got {len(answers)}.")
    return _score(prediction, answers, textvqa_process_answer, _sum_mean)
