"""mm1_jax.eval.scorers.text_rich: ANLS (DocVQA, InfographicVQA) and ChartQA relaxed accuracy, per question.

Expected values are worked out by hand from the rule each row names, read from the file the module docstring cites:
  RRC     the Robust Reading Competition's ANLS script (QwenLM/Qwen-VL eval_mm/infographicsvqa_eval.py, a verbatim copy)
  P2S     google-research/pix2struct pix2struct/metrics.py (anls_metric, relaxed_correctness, aggregate_metrics)
  LMMS    EvolvingLMMs-Lab/lmms-eval lmms_eval/api/metrics.py `anls`, lmms_eval/api/task.py (strips the generation)
  VLMEK   open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py (anls_compute, process_line, hit_calculate)
  PKG     the `anls` package on PyPI, 0.0.2 (shunk031/ANLS anls/metrics/score.py); also used as a reference below
"""

import random

import pytest

from mm1_jax.eval.scorers.text_rich import ANLS_CONVENTIONS, RELAXED_CONVENTIONS, anls, levenshtein, relaxed_accuracy


@pytest.mark.parametrize("a, b, expected", [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2), ("same", "same", 0),
])
def test_levenshtein(a, b, expected):
    assert levenshtein(a, b) == expected


# ---------------------------------------------------------------------------------------------------------- ANLS
ANLS_OFFICIAL = [
    # prediction, answers, expected, rule (RRC unless named)
    ("Paris", ["paris"], 1.0, "both lower-cased"),
    ("  two   words ", ["two words"], 1.0, "both stripped, white-space runs folded to one space"),
    ("kitten", ["sitting"], 1 - 3 / 7, "NL = 3 edits / 7 characters < 0.5: 1 - NL"),
    ("abc", ["xyz"], 0.0, "1 - NL = 0 < 0.5: 0"),
    ("ab", ["ac"], 0.5, "edge: NL exactly 0.5 gives 1 - NL = 0.5, not < 0.5, so kept"),
    ("abcd", ["abxy"], 0.5, "edge again: 2 edits / 4"),
    ("abcde", ["axyze"], 0.0, "1 - NL = 0.4 < 0.5: 0"),
    ("pariz   ", ["paris"], 1 - 1 / 8, "NL's length is the RAW prediction's, 8, not the folded 5"),
    ("two  wordz", ["two words"], 1 - 1 / 10, "folded distance 1 over the raw length 10"),
    ("x", ["\u00df"], 0.5, "the length is len(s.upper()): 'ß'.upper() is 'SS', so NL = 1/2"),
    ("", ["abc"], 0.0, "empty prediction: NL = 3/3"),
    ("", [" a "], 1 - 1 / 3, "empty prediction vs a padded answer: folded distance 1 over raw length 3"),
    ("", [""], 1.0, "both empty: NL is defined 0"),
    ("   ", [""], 1.0, "white space folds to empty: distance 0 over raw length 3"),
    ("ACME Corp", ["ACME Corp."], 1 - 1 / 10, "a trailing period is a character like any other"),
    ("1995", ["1994", "1995"], 1.0, "the best answer: 1 - min NL"),
    ("1996", ["abcd", "1994"], 1 - 1 / 4, "the best answer whichever its place"),
]


@pytest.mark.parametrize("prediction, answers, expected, rule", ANLS_OFFICIAL, ids=[r[3] for r in ANLS_OFFICIAL])
def test_anls_official_hand_computed(prediction, answers, expected, rule):
    assert anls(prediction, answers) == pytest.approx(expected, abs=1e-12)


def test_anls_threshold_is_on_the_similarity():
    # RRC: `question_result < anls_threshold` with question_result = 1 - NL; NL = 3/6 here
    assert anls("abcdef", ["abcxyz"], threshold=0.4) == pytest.approx(0.5)
    assert anls("abcdef", ["abcxyz"], threshold=0.6) == 0.0
    assert anls("abcdef", ["abcxyz"], threshold=0.4, convention="anls_package") == 0.0  # PKG: NL 0.5 < 0.4 fails


ANLS_CONVENTIONS_TABLE = [
    # prediction, answers, convention, expected, rule
    ("pariz   ", ["paris"], "lmms_eval", 1 - 1 / 5, "LMMS: task.py strips the prediction first, so length 5"),
    ("  ab", ["ac"], "lmms_eval", 0.5, "LMMS: stripped, then the RRC edge rule"),
    ("  ab", ["ac"], "official", 1 - 1 / 4, "RRC: raw length 4"),
    ("x", ["\u00df"], "lmms_eval", 0.5, "LMMS: len(s.upper()) like the RRC"),
    (" pariz", [" paris "], "lmms_eval", 1 - 1 / 7, "LMMS: the answer is not stripped, raw length 7"),
    ("pariz   ", ["paris"], "vlmevalkit", 1 - 1 / 8, "VLMEK: anls_compute + hit_calculate, the RRC's numbers"),
    ("ab", ["ac"], "vlmevalkit", 0.5, "VLMEK: 1 - min NL < 0.5 is zeroed, 0.5 kept"),
    ("Paris", ["paris"], "pix2struct", 1.0, "P2S: lower-cased"),
    (" paris", ["paris"], "pix2struct", 1 - 1 / 6, "P2S: not stripped, the space is an edit"),
    ("two  words", ["two words"], "pix2struct", 1 - 1 / 10, "P2S: white space not folded"),
    ("ab", ["ac"], "pix2struct", 0.0, "P2S: NL < theta, so NL exactly 0.5 scores 0"),
    ("kitten", ["sitting", "x"], "pix2struct", 1 - 3 / 7, "P2S: max over targets"),
    ("ab", ["ac"], "anls_package", 0.0, "PKG: NL < threshold, NL exactly 0.5 scores 0"),
    ("pariz   ", ["paris"], "anls_package", 1 - 1 / 5, "PKG: length of the folded strings"),
    ("", [" a "], "anls_package", 0.0, "PKG: folded 'a' vs '' is NL 1"),
    ("x", ["\u00df"], "anls_package", 0.0, "PKG: upper of the folded strings, NL = 1/2, not < 0.5"),
]


@pytest.mark.parametrize("prediction, answers, convention, expected, rule", ANLS_CONVENTIONS_TABLE,
                         ids=[r[4] for r in ANLS_CONVENTIONS_TABLE])
def test_anls_conventions_hand_computed(prediction, answers, convention, expected, rule):
    assert anls(prediction, answers, convention=convention) == pytest.approx(expected, abs=1e-12)


def test_anls_pix2struct_divides_by_zero_on_two_empty_strings():
    with pytest.raises(ValueError, match="divides by zero"):
        anls("", [""], convention="pix2struct")


def _random_strings(rng, n, alphabet):
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7))) for _ in range(n)]


def test_anls_package_convention_equals_the_anls_package():
    """PKG as a reference: the `anls` package's anls_score on random strings with case, padding, white-space runs."""
    anls_package = pytest.importorskip("anls")
    rng = random.Random(0)
    for _ in range(400):
        prediction = _random_strings(rng, 1, "abAB  ")[0]
        answers = _random_strings(rng, rng.randint(1, 3), "abAB  ")
        for threshold in (0.5, 0.3):
            assert anls(prediction, answers, threshold, convention="anls_package") == \
                anls_package.anls_score(prediction, answers, threshold)


def test_anls_official_equals_the_anls_package_where_their_rules_agree():
    """PKG as a reference for RRC where the two rules coincide: no padding, no white-space runs, no case (raw length ==
    folded length) and no answer at NL exactly 0.5 (the threshold edge, tested by hand above)."""
    anls_package = pytest.importorskip("anls")
    from anls.metrics.dist import normalized_levenshtein_distance

    rng, compared = random.Random(1), 0
    for _ in range(600):
        prediction = _random_strings(rng, 1, "abc")[0]
        answers = _random_strings(rng, rng.randint(1, 3), "abc")
        if min(normalized_levenshtein_distance(prediction, a) for a in answers) == 0.5:
            continue
        compared += 1
        for convention in ("official", "lmms_eval", "vlmevalkit"):
            assert anls(prediction, answers, convention=convention) == anls_package.anls_score(prediction, answers)
    assert compared > 400


def test_anls_rejects_bad_arguments():
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit, pix2struct, anls_package"):
        anls("a", ["a"], convention="rrc")
    with pytest.raises(ValueError, match="no answers"):
        anls("a", [])
    with pytest.raises(TypeError):
        anls("a", "a")
    assert ANLS_CONVENTIONS[0] == "official"


# ------------------------------------------------------------------------------------------------ ChartQA relaxed
RELAXED_OFFICIAL = [
    # prediction, answers, expected, rule (P2S relaxed_correctness + aggregate_metrics unless named)
    ("105", ["100"], 1.0, "exactly 5% off: relative change <= 0.05"),
    ("95", ["100"], 1.0, "5% below"),
    ("105.1", ["100"], 0.0, "5.1% off"),
    ("12%", ["0.12"], 1.0, "'12%' reads as 12 / 100"),
    ("0.12", ["12%"], 1.0, "a percentage target reads the same way"),
    ("12", ["0.12"], 0.0, "no '%': 12 vs 0.12"),
    ("12", ["12%"], 0.0, "12 vs 0.12"),
    ("12%%", ["0.12"], 1.0, "rstrip('%') drops every trailing '%'"),
    ("12 %", ["0.12"], 1.0, "float('12 ') takes the space"),
    (" 12", ["12"], 1.0, "float() itself ignores surrounding white space"),
    ("12% ", ["12%"], 0.0, "not stripped: '12% ' has no '%' suffix, is no number, and differs as text"),
    (" yes", ["yes"], 0.0, "text is not stripped"),
    ("0", ["0"], 1.0, "a zero target is compared as text"),
    ("0.0", ["0"], 0.0, "zero target as text: '0.0' != '0'"),
    ("0.01", ["0"], 0.0, "zero target: no tolerance"),
    ("0", ["5"], 0.0, "a zero prediction against a non-zero target is numeric: 100% off"),
    ("1,000", ["1000"], 0.0, "float('1,000') fails: text comparison"),
    ("1,000", ["1,000"], 1.0, "equal text"),
    ("1000", ["1,000"], 0.0, "the target is no number: text comparison"),
    ("1_000", ["1000"], 1.0, "Python's float accepts '1_000'"),
    ("1e2", ["100"], 1.0, "Python's float reads exponents"),
    ("-5", ["-5.2"], 1.0, "negative numbers: |-5 + 5.2| / 5.2 = 3.8%"),
    ("5", ["-5"], 0.0, "the sign counts: 200% off"),
    ("nan", ["nan"], 0.0, "'nan' is a number and nan <= 0.05 is false"),
    ("Yes", ["yes"], 1.0, "text: case ignored"),
    ("yes.", ["yes"], 0.0, "text: a trailing period counts"),
    ("7", ["seven", "7.2"], 1.0, "the best target (7 vs 7.2: 2.8%)"),
]


@pytest.mark.parametrize("prediction, answers, expected, rule", RELAXED_OFFICIAL, ids=[r[3] for r in RELAXED_OFFICIAL])
def test_relaxed_accuracy_official_hand_computed(prediction, answers, expected, rule):
    assert relaxed_accuracy(prediction, answers) == expected


RELAXED_CONVENTIONS_TABLE = [
    ("12% ", ["12%"], 1.0, "stripped, then '12%' is 0.12"),
    (" yes ", ["yes"], 1.0, "stripped, then equal text"),
    ("yes", [" yes"], 0.0, "the answer is not stripped"),
    ("105.1", ["100"], 0.0, "the same 5%"),
    ("0.0", ["0"], 0.0, "the same zero-target rule"),
]


@pytest.mark.parametrize("convention", ["lmms_eval", "vlmevalkit"])
@pytest.mark.parametrize("prediction, answers, expected, rule", RELAXED_CONVENTIONS_TABLE,
                         ids=[r[3] for r in RELAXED_CONVENTIONS_TABLE])
def test_relaxed_accuracy_harnesses_strip_the_prediction(prediction, answers, expected, rule, convention):
    # LMMS: task.py strips, chartqa/utils.py relaxed_correctness(pred, answer); VLMEK: process_line strips
    assert relaxed_accuracy(prediction, answers, convention=convention) == expected


def test_relaxed_accuracy_tolerance_and_bad_arguments():
    assert relaxed_accuracy("110", ["100"], tolerance=0.1) == 1.0  # 10 / 100 <= 0.1
    assert relaxed_accuracy("110.5", ["100"], tolerance=0.1) == 0.0
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit"):
        relaxed_accuracy("1", ["1"], convention="pix2struct")
    with pytest.raises(ValueError, match="no answers"):
        relaxed_accuracy("1", [])
    with pytest.raises(TypeError):
        relaxed_accuracy("1", "1")
    assert RELAXED_CONVENTIONS[0] == "official"
