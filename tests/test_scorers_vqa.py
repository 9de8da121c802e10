"""mm1_jax.eval.scorers.vqa: each benchmark's official VQA accuracy, and the lmms-eval / VLMEvalKit conventions.

The expected values are worked out by hand from the rule each case names (the file it is read from is named in the
table's comments); with 10 answers, 1 / 2 / 3 / >=4 humans equal to the (processed) prediction give 0.3 / 0.6 / 0.9
/ 1.0 under the leave-one-out min(1, matches / 3). Where the benchmark's own code is installed (`mmf` for TextVQA,
`lmms-eval` for its tasks: `pip install --no-deps mmf==1.0.0rc10 lmms-eval==0.7.3`), the scorers are also compared
with it on every case of the tables and on a grid of awkward strings; those tests skip when it is not.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import types

import pytest

from mm1_jax.eval.scorers import vqa as S


def ten(*groups: tuple[str, int]) -> list[str]:
    """Ten human answers from (answer, how many humans gave it) groups."""
    out = [a for a, n in groups for _ in range(n)]
    assert len(out) == 10, out
    return out


def humans(answer: str, n: int) -> list[str]:
    """`n` humans gave `answer`; the other 10 - n each gave a different unrelated answer."""
    return [answer] * n + [f"other{i}" for i in range(10 - n)]


# (prediction, answers, expected, rule) -- GT-Vision-Lab/VQA vqaEval.py (master a013f00)
VQA_OFFICIAL = [
    ("yes", humans("yes", 1), 0.3, "leave-one-out: 1 matching human -> 9/10 subsets score 1/3"),
    ("yes", humans("yes", 2), 0.6, "leave-one-out: 2 matching humans"),
    ("yes", humans("yes", 3), 0.9, "leave-one-out: 3 matching humans"),
    ("yes", humans("yes", 4), 1.0, "leave-one-out: 4 matching humans -> every subset of 9 has >= 3"),
    ("no", humans("yes", 4), 0.0, "no human gave it"),
    ("yes", ["yes"] * 10, 1.0, "all ten agree: exact match"),
    ("Yes", ["yes"] * 10, 0.0, "all ten agree: no normalisation, so case counts"),
    ("yes.", ["yes"] * 10, 0.0, "all ten agree: no normalisation, so the period counts"),
    ("two", ["2"] * 10, 0.0, "all ten agree: number words are not mapped"),
    ("the dog", ["dog"] * 10, 0.0, "all ten agree: articles are not dropped"),
    ("  yes\n", ["yes"] * 10, 1.0, "cleaning (\\n -> space, strip) applies even when all agree"),
    ("yes\t", ["yes"] * 10, 1.0, "cleaning (\\t -> space, strip) applies even when all agree"),
    ("Yes.", ten(("yes", 9), ("no", 1)), 1.0, "humans disagree: lower-case, final period dropped"),
    ("two", ten(("2", 3), ("3", 7)), 0.9, "number word -> digit"),
    ("none", ten(("0", 3), ("1", 7)), 0.9, "'none' -> '0' in the number map"),
    ("the dog", ten(("dog", 2), ("cat", 8)), 0.6, "article dropped"),
    ("a dog", ten(("the dog", 2), ("cat", 8)), 0.6, "articles dropped on both sides"),
    ("dont", ten(("don't", 1), ("no", 9)), 0.3, "contraction restored: dont -> don't"),
    ("Im", ten(("i'm", 3), ("no", 7)), 0.0, "the table's key is 'Im' but words are lower-cased first: never matches"),
    ("1,000", ten(("1000", 4), ("100", 6)), 1.0, "comma between digits: punctuation deleted, not spaced"),
    ("red,white", ten(("red white", 3), ("red", 7)), 0.9, "comma not between digits, no space: -> space"),
    ("red, white", ten(("red white", 3), ("red", 7)), 0.9, "', ' in the input: comma deleted"),
    ("coca-cola", ten(("coca cola", 3), ("pepsi", 7)), 0.9, "hyphen -> space"),
    ("coca-cola 1,2", ten(("cocacola 12", 3), ("pepsi", 7)), 0.9, "a digit,digit anywhere deletes all punctuation"),
    ("1,,000", ten(("1000", 3), ("x", 7)), 0.0, "(\\d)(\\,)(\\d) needs one comma: ',,' -> spaces"),
    ("3.5", ten(("3.5", 3), ("3", 7)), 0.9, "decimal point kept"),
    ("3.5.", ten(("3.5", 3), ("3", 7)), 0.9, "period not followed by a digit dropped"),
    ("5.", ten(("5", 3), ("6", 7)), 0.9, "period after a digit dropped too (the look-behind typo never fires)"),
    ("", ten(("yes", 5), ("no", 5)), 0.0, "empty prediction"),
    ("   ", ten(("yes", 5), ("no", 5)), 0.0, "blank prediction"),
    ("racing", ["race", "race", "racing", "racing", "car", "car", "f1", "f1", "cars", "cars"], 0.6,
     "OK-VQA layout (5 answers, each twice): 2 matches"),
]


@pytest.mark.parametrize("prediction, answers, expected, rule", VQA_OFFICIAL, ids=[r for *_, r in VQA_OFFICIAL])
def test_vqa_official(prediction, answers, expected, rule):
    assert S.vqa_accuracy(prediction, answers) == pytest.approx(expected, abs=1e-12), rule
    assert S.okvqa_accuracy(prediction, answers) == pytest.approx(expected, abs=1e-12), "OK-VQA: the VQA script"


def test_vqa_official_float_matches_the_script():
    """vqaEval.py's float(sum(gtAcc)) / len(gtAcc): 9 * (1/3) / 10 is 0.3 to the last bit only by luck; the scorer
    must give exactly what that expression gives, not a rounded 0.3."""
    assert S.vqa_accuracy("yes", humans("yes", 3)) == float(sum([2 / 3] * 3 + [1.0] * 7)) / 10
    assert S.vqa_accuracy("yes", humans("yes", 1)) == float(sum([0.0] + [1 / 3] * 9)) / 10


@pytest.mark.parametrize("text, expected, rule", [
    ("Yes.", "yes", "lower-case, final period"),
    ("The two dogs", "2 dogs", "article, number word"),
    ("dont", "don't", "contraction"),
    ("100,978", "100978", "comma between digits deleted"),
    ("black/white", "black white", "slash -> space"),
    ("black / white", "black white", "' /' in the input: deleted (the double space folds)"),
    ("2:50 pm", "2:50 pm", "colon kept"),
    ("girl's", "girl's", "apostrophe kept"),
    ("e.g.", "eg", "periods not before a digit dropped"),
    ("x;-y z-w", "x y z w", "the space tests look at the input: the ' -' that ';' -> ' ' made does not delete '-'"),
    ("yes" + "." * 40, "yes" + "." * 8, "re.UNICODE passed as sub's count: only 32 periods go"),
])
def test_normalize_vqa_answer(text, expected, rule):
    assert S.normalize_vqa_answer(text) == expected, rule


# VizWiz API vqaEval.py: prediction always normalised, human answers compared as stored.
VIZWIZ_OFFICIAL = [
    ("unanswerable", ["unanswerable"] * 10, 1.0, "'unanswerable' is an ordinary answer"),
    ("Unanswerable.", ["unanswerable"] * 10, 1.0, "prediction normalised even when all ten agree (unlike VQA)"),
    ("unanswerable", ["Unanswerable"] * 10, 0.0, "human answers are not lower-cased"),
    ("Unanswerable", ["Unanswerable"] * 10, 0.0, "the prediction is lower-cased, the humans are not"),
    ("yes", ["yes "] * 10, 0.0, "human answers are not even stripped"),
    ("two", ten(("two", 3), ("three", 7)), 0.0, "prediction 'two' -> '2', the humans' 'two' stays"),
    ("2", ten(("two", 3), ("2", 7)), 1.0, "7 humans said '2'"),
    ("dont", ten(("don't", 3), ("no", 7)), 0.0, "its table maps dont -> don\u2019t (U+2019), not don't"),
    ("dont", ten(("don\u2019t", 3), ("no", 7)), 0.9, "dont -> don\u2019t"),
    ("weve", ten(("we've", 3), ("no", 7)), 0.9, "one of the eight ASCII values: weve -> we've"),
    ("the red one", ten(("red 1", 2), ("blue", 8)), 0.6, "articles dropped, number mapped, from the prediction"),
    ("", ten(("unanswerable", 6), ("", 4)), 1.0, "an empty prediction matches empty human answers"),
    ("", ["unanswerable"] * 10, 0.0, "empty prediction"),
]


@pytest.mark.parametrize("prediction, answers, expected, rule", VIZWIZ_OFFICIAL, ids=[r for *_, r in VIZWIZ_OFFICIAL])
def test_vizwiz_official(prediction, answers, expected, rule):
    assert S.vizwiz_accuracy(prediction, answers) == pytest.approx(expected, abs=1e-12), rule


def test_vizwiz_contraction_table():
    """The VizWiz API's table as printed in its vqaEval.py: U+2019 in keys and values except the listed ones."""
    table = S.VIZWIZ_CONTRACTIONS
    assert len(table) == len(S.CONTRACTIONS) == 120
    assert table["dont"] == "don\u2019t" and table["twas"] == "\u2019twas" and table["somebody\u2019d"] == "somebodyd"
    assert table["aint"] == "ain't" and table["whove"] == "who've" and table["wheres"] == "where's"
    assert table["couldn'tve"] == "couldn\u2019t\u2019ve" and table["hadn'tve"] == "hadn\u2019t\u2019ve"
    assert table["couldnt\u2019ve"] == "couldn\u2019t\u2019ve" and "couldnt've" not in table


# facebookresearch/mmf m4c_evaluators.py: EvalAIAnswerProcessor on both sides, always.
TEXTVQA_OFFICIAL = [
    ("Yes.", ["yes"] * 10, 1.0, "always processed, even when all ten agree"),
    ("Coca-Cola", ten(("coca cola", 3), ("pepsi", 7)), 0.9, "lower-case, hyphen -> space"),
    ("red,white", ten(("red white", 3), ("blue", 7)), 0.0, "word_tokenize deletes every comma first: 'redwhite'"),
    ("red,white", ten(("red,white", 3), ("blue", 7)), 0.9, "... on the human answers too"),
    ("red,white", ten(("red, white", 3), ("blue", 7)), 0.0, "'red, white' keeps its space: 'red white'"),
    ("dog 's", ten(("dog's", 3), ("cat", 7)), 0.9, "\"'s\" -> \" 's\" on both sides"),
    ("1,000", ten(("1000", 3), ("100", 7)), 0.9, "comma deleted"),
    ("stop?", ten(("stop", 3), ("go", 7)), 0.9, "question mark deleted"),
    ("5.", ten(("5", 3), ("6", 7)), 0.9, "period after a digit dropped"),
    ("The Two", ten(("2", 4), ("3", 6)), 1.0, "article, number word"),
    ("dont", ten(("don't", 1), ("no", 9)), 0.3, "contraction"),
    ("pepsi", ten(("coke", 5), ("cola", 5)), 0.0, "not among the answers: 0"),
    ("", ten(("coke", 5), ("cola", 5)), 0.0, "empty prediction"),
]


@pytest.mark.parametrize("prediction, answers, expected, rule", TEXTVQA_OFFICIAL,
                         ids=[r for *_, r in TEXTVQA_OFFICIAL])
def test_textvqa_official(prediction, answers, expected, rule):
    assert S.textvqa_accuracy(prediction, answers) == pytest.approx(expected, abs=1e-12), rule


@pytest.mark.parametrize("text, expected", [("Dog's,", "dog 's"), ("DOG'S", "dog 's"), ("a,b", "ab"), ("x?y", "xy"),
                                            ("What?", "what"), ("  Two\tCats ", "2 cats")])
def test_textvqa_process_answer(text, expected):
    assert S.textvqa_process_answer(text) == expected


# (function, prediction, answers, {convention: expected}, rule)
CONVENTION_CASES = [
    (S.vqa_accuracy, "Yes", ["yes"] * 10, {"official": 0.0, "lmms_eval": 1.0, "vlmevalkit": 1.0},
     "harnesses normalise even when all ten agree"),
    (S.vqa_accuracy, "5.", ten(("5", 3), ("6", 7)), {"official": 0.9, "lmms_eval": 0.9, "vlmevalkit": 0.0},
     "VLMEvalKit's (?<!\\d)\\.(?!\\d) keeps a period after a digit"),
    (S.vqa_accuracy, "1,,000", ten(("1000", 3), ("x", 7)), {"official": 0.0, "lmms_eval": 0.9, "vlmevalkit": 0.0},
     "lmms-eval's comma regex (?<=\\d)(\\,)+(?=\\d) takes ',,'"),
    (S.vqa_accuracy, "red,white", ten(("red white", 3), ("blue", 7)),
     {"official": 0.9, "lmms_eval": 0.9, "vlmevalkit": 0.9}, "lmms-eval's vqav2 task: no word_tokenize"),
    (S.okvqa_accuracy, "red,white", ten(("red white", 3), ("blue", 7)),
     {"official": 0.9, "lmms_eval": 0.0, "vlmevalkit": 0.9}, "lmms-eval's ok_vqa task: word_tokenize deletes commas"),
    (S.okvqa_accuracy, "Yes", ["yes"] * 10, {"official": 0.0, "lmms_eval": 1.0, "vlmevalkit": 1.0},
     "OK-VQA official is the VQA script"),
    (S.vizwiz_accuracy, "unanswerable", ["Unanswerable"] * 10,
     {"official": 0.0, "lmms_eval": 1.0, "vlmevalkit": 1.0}, "harnesses normalise the human answers"),
    (S.vizwiz_accuracy, "dont", ten(("don't", 3), ("no", 7)), {"official": 0.0, "lmms_eval": 0.9, "vlmevalkit": 0.9},
     "harnesses use VQA's ASCII contraction table"),
    (S.vizwiz_accuracy, "5.", ten(("5", 3), ("6", 7)), {"official": 0.9, "lmms_eval": 0.9, "vlmevalkit": 0.0},
     "VLMEvalKit's period regex"),
    (S.textvqa_accuracy, "red,white", ten(("red white", 3), ("blue", 7)),
     {"official": 0.0, "lmms_eval": 0.0, "vlmevalkit": 0.9}, "VLMEvalKit has no word_tokenize"),
    (S.textvqa_accuracy, "dog 's", ten(("dog's", 3), ("cat", 7)),
     {"official": 0.9, "lmms_eval": 0.9, "vlmevalkit": 0.0}, "VLMEvalKit does not split \"'s\""),
]


@pytest.mark.parametrize("fn, prediction, answers, expected, rule", CONVENTION_CASES,
                         ids=[c[-1] for c in CONVENTION_CASES])
def test_conventions(fn, prediction, answers, expected, rule):
    got = {c: fn(prediction, answers, convention=c) for c in S.CONVENTIONS}
    assert got == pytest.approx(expected, abs=1e-12), rule


def test_textvqa_answer_count():
    """mmf's _compute_answer_scores asserts 10 answers; lmms-eval and VLMEvalKit take any number."""
    with pytest.raises(ValueError, match="10 answers"):
        S.textvqa_accuracy("yes", ["yes"] * 5)
    assert S.textvqa_accuracy("yes", ["yes"] * 5, convention="lmms_eval") == 1.0
    # 3 answers, 1 match: leaving out the match leaves 0, leaving out either "no" leaves 1 -> (0 + 1/3 + 1/3) / 3
    assert S.textvqa_accuracy("yes", ["yes", "no", "no"], convention="vlmevalkit") == pytest.approx(2 / 9)


@pytest.mark.parametrize("fn", [S.vqa_accuracy, S.okvqa_accuracy, S.vizwiz_accuracy, S.textvqa_accuracy])
def test_bad_arguments(fn):
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit"):
        fn("yes", ["yes"] * 10, convention="lmms-eval")
    for convention in ("lmms_eval", "vlmevalkit") + (() if fn is S.textvqa_accuracy else ("official",)):
        with pytest.raises(ValueError, match="no human answers"):
            fn("yes", [], convention=convention)


# ---------------------------------------------------------------------------------------------------------------------
# The benchmarks' own code, where installed
# ---------------------------------------------------------------------------------------------------------------------
def _package_dir(name: str) -> str | None:
    spec = importlib.util.find_spec(name)  # finds the package without running its __init__ (which imports torch)
    return next(iter(spec.submodule_search_locations)) if spec and spec.submodule_search_locations else None


def _load(name: str, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grid() -> list[tuple[str, list[str]]]:
    """Awkward predictions against awkward answer sets (all agreeing, disagreeing, padded, punctuated)."""
    words = ["yes", "Yes.", " two ", "2", "the dog", "dog's", "dont", "don't", "1,000", "1000", "5.", "5",
             "red,white", "red white", "Unanswerable", "", "none", "1,,2"]
    cases = []
    for i, (a, b) in enumerate(itertools.product(words, repeat=2)):
        answers = [a] * (i % 5) + [b] * (10 - i % 5)
        cases += [(a, answers), (words[(i * 7) % len(words)], answers)]
    return cases


ALL_CASES = ([(p, a) for p, a, *_ in VQA_OFFICIAL + VIZWIZ_OFFICIAL + TEXTVQA_OFFICIAL]
             + [(p, a) for _, p, a, *_ in CONVENTION_CASES] + _grid())


@pytest.fixture(scope="module")
def mmf_evaluator():
    root = _package_dir("mmf")
    if root is None:
        pytest.skip("mmf is not installed (pip install --no-deps mmf==1.0.0rc10)")
    return _load("_ref_m4c_evaluators", os.path.join(root, "utils", "m4c_evaluators.py")).TextVQAAccuracyEvaluator()


def test_textvqa_against_mmf(mmf_evaluator):
    cases = [(p, a) for p, a in ALL_CASES if len(a) == 10]
    for prediction, answers in cases:
        expected = mmf_evaluator.eval_pred_list([{"pred_answer": prediction, "gt_answers": answers}])
        assert S.textvqa_accuracy(prediction, answers) == expected, (prediction, answers)
    assert {round(S.textvqa_accuracy(p, a), 9) for p, a in cases} == {0.0, 0.3, 0.6, 0.9, 1.0}  # every level


@pytest.fixture(scope="module")
def lmms_tasks():
    root = _package_dir("lmms_eval")
    if root is None:
        pytest.skip("lmms-eval is not installed (pip install --no-deps lmms-eval==0.7.3)")
    tasks = os.path.join(root, "tasks")
    # The task files import lmms_eval.tasks._task_utils.{file_utils,vqa_eval_metric} and loguru; lmms_eval's own
    # __init__ files pull in torch and more, so the parent packages (and loguru, when absent) are stand-ins while the
    # files load, and sys.modules is put back as it was afterwards.
    stubs = ["lmms_eval", "lmms_eval.tasks", "lmms_eval.tasks._task_utils"]
    if importlib.util.find_spec("loguru") is None:
        stubs.append("loguru")
    utils = [f"lmms_eval.tasks._task_utils.{name}" for name in ("file_utils", "vqa_eval_metric")]
    saved = {name: sys.modules.get(name) for name in stubs + utils}
    try:
        for name in stubs:
            sys.modules[name] = types.ModuleType(name)
            sys.modules[name].__path__ = []
            sys.modules[name].logger = None
        for name in utils:
            sys.modules[name] = _load(name, os.path.join(tasks, "_task_utils", name.rsplit(".", 1)[1] + ".py"))
        return {t: _load(f"_ref_lmms_{t}", os.path.join(tasks, t, "utils.py"))
                for t in ("vqav2", "ok_vqa", "vizwiz_vqa", "textvqa")}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_lmms_eval_against_its_tasks(lmms_tasks):
    for prediction, answers in ALL_CASES:
        if not answers:
            continue
        doc = {"question_id": 1, "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]}
        expected = lmms_tasks["vqav2"].vqav2_process_results(doc, [prediction])["exact_match"]
        assert S.vqa_accuracy(prediction, answers, "lmms_eval") == expected, ("vqav2", prediction, answers)
        for task, fn, score in (("ok_vqa", "ok_vqa_process_results", S.okvqa_accuracy),
                                ("vizwiz_vqa", "vizwiz_vqa_process_results", S.vizwiz_accuracy),
                                ("textvqa", "textvqa_process_results", S.textvqa_accuracy)):
            expected = getattr(lmms_tasks[task], fn)({"question_id": 1, "answers": list(answers)}, [prediction])
            assert score(prediction, answers, "lmms_eval") == expected["exact_match"], (task, prediction, answers)
