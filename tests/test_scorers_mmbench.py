"""MMBench's scorer against hand-computed cases, each naming the rule of the official file it exercises.

official: open-compass/VLMEvalKit vlmeval/utils/matching_util.py (can_infer_option, can_infer_text) and
vlmeval/dataset/utils/multiple_choice.py (mcq_circular_eval, mcq_vanilla_eval), vlmeval/tools.py (CIRCULAR).
lmms_eval: lmms_eval/tasks/mmbench/mmbench_evals.py (2023 can_infer) + lmms_eval/tasks/_task_utils/mcq_extract.py.
opencompass_2023: open-compass/opencompass tools/eval_mmbench.py (the 2023 can_infer, no judge)."""
import math

import pytest

from mm1_jax.eval.scorers import mmbench

ANIMALS = ["cat", "dog", "red", "blue"]  # A B C D: 13 characters, so the text rule reads predictions <= 26 long
TWO = ["dog", "cat"]

OFFICIAL = [
    # (prediction, options, expected index, rule in matching_util.py)
    ("B", ANIMALS, 1, "one option letter among the words"),
    ("The answer is B.", ANIMALS, 1, "'.' becomes a space; B is among the last 4 words"),
    ("B) dog", ANIMALS, 1, "')' becomes a space"),
    ("(C)", ANIMALS, 2, "'(' and ')' become spaces"),
    ("**D**", ANIMALS, 3, "'*' becomes a space"),
    ("Answer: C", ANIMALS, 2, "':' becomes a space"),
    ("A cat", ANIMALS, 0, "'A' read as the letter: the quantifier check runs only with VERBOSE set"),
    ("A cat is sitting on the mat", TWO, None, "letter not among the last 4 words; text rule: too long (27 > 12)"),
    ("B is correct because the animal in the picture is a dog", ANIMALS, None,
     "letter first of 12 words: not among the last 4; too long for the text rule"),
    ("I choose option B for this one", ANIMALS, 1, "letter 4th of 7 words: among the last 4"),
    ("A or B", ANIMALS, None, "two option letters: no letter; no option text inside"),
    ("b", ANIMALS, None, "letters are case-sensitive; 'b' holds no option text"),
    ("the answer is b", ANIMALS, 1, "verbose-answer regex is case-insensitive"),
    ("The answer is blue", ANIMALS, 1, "verbose-answer regex has no word boundary: 'blue' reads as B"),
    ("The correct answer is **C**, as the figure shows a small red ball on the table", ANIMALS, 2,
     "letter too early for the word rule; the verbose-answer regex finds it"),
    ("dog", ANIMALS, 1, "text rule: the one option whose text is inside"),
    ("I think it is a dog", ANIMALS, 1, "no letter ('I' is no option); text rule: 'dog'"),
    ("scatter", ANIMALS, 0, "text rule is a substring test: 'cat' in 'scatter'"),
    ("red and blue", ANIMALS, None, "text rule: two options inside -> none"),
    ("cat", ["cat", "cat", "dog"], None, "repeated options: two options match -> none"),
    ("B", ["cat", "cat", "dog"], 1, "repeated options: the letter still reads"),
    ("C", TWO, None, "a letter past the options is not a choice letter"),
    ("", ANIMALS, None, "empty prediction"),
    ("Z", ANIMALS, None, "no letter and the word 'Z' -> 'Z', scored wrong"),
    ("Cannot determine the answer. B", ANIMALS, None, "reject-to-answer phrase -> 'Z' before any letter"),
    ("Failed to obtain answer via API B", ANIMALS, None, "API failure: no letter; text rule: too long"),
]


@pytest.mark.parametrize("prediction,options,expected,rule", OFFICIAL)
def test_official_extraction(prediction, options, expected, rule):
    assert mmbench.extract_choice(prediction, options) == expected, rule


def test_refusals_read_as_z():
    """matching_util.py can_infer_option: reject phrases and a lone 'Z' give 'Z' (VLMEvalKit's 'no option')."""
    assert mmbench.infer_letter("Cannot determine the answer", ANIMALS) == "Z"
    assert mmbench.infer_letter("Z", ANIMALS) == "Z"
    assert mmbench.infer_letter("nothing matches here", ANIMALS) is None


LMMS = [
    # (prediction, options, lmms_eval, opencompass_2023, rule in mmbench_evals.py / mcq_extract.py)
    ("B", ANIMALS, 1, 1, "can_infer_option: one letter word"),
    ("The answer is B.", ANIMALS, 1, 1, "can_infer_option affix ('', '.'): 'B.' is a word"),
    ("(B)", ANIMALS, 1, 1, "can_infer_option affix ('(', ')')"),
    ("A cat", ANIMALS, 0, 0, "quantifier check needs more than 3 words"),
    ("A cat is on the mat", TWO, 1, 1, "'A' in over 3 words is skipped; can_infer_text (no length limit) finds 'cat'"),
    ("the answer is b", ANIMALS, None, None, "no case-insensitive rule; mcq_extract looks for capitals only"),
    ("Don't know", ANIMALS, 3, None, "mcq_extract fallback: any capital option letter, here the D of Don't"),
    ("**B**", ANIMALS, 1, None, "2023 rules split on white space only; mcq_extract fallback finds B"),
    ("E", ANIMALS, None, None, "2023 rules read A-E whatever the options: 'E' is no option here"),
    ("dog", ANIMALS, 1, 1, "can_infer_text"),
    ("A or B", ANIMALS, 0, None, "two letters: 2023 rules give none; mcq_extract: 'start' (10) beats 'end' (9)"),
]


@pytest.mark.parametrize("prediction,options,lmms,oc2023,rule", LMMS)
def test_lmms_eval_and_2023_extraction(prediction, options, lmms, oc2023, rule):
    assert mmbench.extract_choice(prediction, options, "lmms_eval") == lmms, rule
    assert mmbench.extract_choice(prediction, options, "opencompass_2023") == oc2023, rule


def test_unknown_convention_lists_the_known_ones():
    with pytest.raises(ValueError, match="official, lmms_eval, opencompass_2023"):
        mmbench.extract_choice("B", ANIMALS, "vlmevalkit_v0")


def test_circular_grouping_and_accuracy():
    """multiple_choice.py mcq_circular_eval: g_index = index % 1e6; only groups whose pass 0 is present count; a
    group hits when every pass is right. image_mcq.py vanilla_0 / vanilla_all: rows index <= 1e6 / every row."""
    rows = {5: True, 1_000_005: False, 2_000_005: True, 7: True, 1_000_007: True, 3_000_009: True}
    groups = mmbench.group_passes(rows)
    assert groups == {5: [True, False, True], 7: [True, True]}  # 9 has no pass 0: dropped
    assert mmbench.circular_accuracy(groups) == 0.5
    assert mmbench.vanilla_accuracy(rows, "first") == 1.0
    assert mmbench.vanilla_accuracy(rows, "all") == 5 / 6
    assert math.isnan(mmbench.circular_accuracy({}))  # np.mean of nothing
    # a g_index column overrides index % 1e6
    assert mmbench.group_passes({5: True, 8: False}, g_index={5: 5, 8: 5}) == {5: [True, False]}


def test_circular_passes_follow_vlmutil_circular():
    """vlmeval/tools.py CIRCULAR: pass 1 maps A->D, B->A, C->B, D->C (deque.rotate(1)), so the new A column holds the
    old B, ...: pass k shows options[k:] + options[:k] and an answer at old A sits at D in pass 1."""
    passes = mmbench.circular_passes(["w", "x", "y", "z"], 0)
    assert passes == [(["w", "x", "y", "z"], 0), (["x", "y", "z", "w"], 3), (["y", "z", "w", "x"], 2),
                      (["z", "w", "x", "y"], 1)]
    assert mmbench.circular_passes(["p", "q"], 1) == [(["p", "q"], 1), (["q", "p"], 0)]


@pytest.mark.parametrize("options,answer,expected,rule", [
    (["cat", "dog"], "B", True, "plain options"),
    (["A and B", "cat"], "A", False, "an option names two option letters"),
    (["B", "cat"], "A", False, "an option is itself a capital letter"),
    (["cat", "dog"], "C", False, "the answer is not among the options"),
])
def test_circular_eligible(options, answer, expected, rule):
    assert mmbench.circular_eligible(options, answer) is expected, rule
