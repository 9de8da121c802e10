"""mm1_jax.eval.scorers.gqa: GQA accuracy as the release's eval.py computes it, and the harness conventions.

Expected values are worked out by hand from the rule each row names, read from:
  EVAL    the GQA release's eval.py (copy: SHI-Labs/VCoder playground/data/eval/gqa/data/eval/eval.py)
  LMMS    EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/gqa/gqa.yaml (exact_match, ignore_case, ignore_punctuation),
          lmms_eval/api/metrics.py exact_match_hf_evaluate, lmms_eval/api/task.py (strips the generation)
  VLMEK   open-compass/VLMEvalKit vlmeval/dataset/utils/vqa_eval.py process_line(method='accuracy'), hit_calculate
"""

import numpy as np
import pytest

from mm1_jax.eval.scorers.gqa import gqa_accuracy, gqa_answer_type, gqa_scores

GQA_TABLE = [
    # prediction, answers, convention, expected, rule
    ("yes", ["yes"], "official", 1.0, "EVAL: predicted == gold"),
    ("Yes", ["yes"], "official", 0.0, "EVAL: case counts"),
    ("yes.", ["yes"], "official", 0.0, "EVAL: punctuation counts"),
    (" yes", ["yes"], "official", 0.0, "EVAL: white space counts"),
    ("the table", ["table"], "official", 0.0, "EVAL: no article removal"),
    ("2", ["two"], "official", 0.0, "EVAL: no number words"),
    ("Yes.", ["yes"], "lmms_eval", 1.0, "LMMS: lower-cased, punctuation deleted"),
    (" yes \n", ["yes"], "lmms_eval", 1.0, "LMMS: the generation is stripped"),
    ("t-shirt", ["tshirt"], "lmms_eval", 1.0, "LMMS: punctuation deleted, not replaced by a space"),
    ("yes .", ["yes"], "lmms_eval", 0.0, "LMMS: deleting the '.' leaves 'yes ', not stripped again"),
    ("the table", ["table"], "lmms_eval", 0.0, "LMMS: no article removal"),
    ("yes\x00", ["yes"], "lmms_eval", 1.0, "LMMS: numpy unicode arrays drop trailing NULs"),
    ("yes\x00.", ["yes"], "lmms_eval", 1.0, "LMMS: and again once deleting the '.' leaves the NUL last"),
    ("Yes", ["yes"], "vlmevalkit", 1.0, "VLMEK: stripped and lower-cased"),
    ("  YES ", ["yes "], "vlmevalkit", 1.0, "VLMEK: both stripped"),
    ("yes.", ["yes"], "vlmevalkit", 0.0, "VLMEK: punctuation counts"),
    ("yes", ["yes", "no"], "vlmevalkit", 0.5, "VLMEK: the mean over the answers (hit_calculate's default)"),
]


@pytest.mark.parametrize("prediction, answers, convention, expected, rule", GQA_TABLE, ids=[r[4] for r in GQA_TABLE])
def test_gqa_accuracy_hand_computed(prediction, answers, convention, expected, rule):
    assert gqa_accuracy(prediction, answers, convention=convention) == expected


def test_numpy_drops_trailing_nuls():
    """The premise of the LMMS NUL row: np.asarray (as in exact_match_hf_evaluate) and its comparison drop them."""
    assert (np.asarray(["yes\x00"]) == np.asarray(["yes"]))[0]
    table = str.maketrans("", "", ".")
    assert np.char.translate(np.asarray(["yes\x00."]), table)[0] == "yes"


def test_gqa_accuracy_rejects_bad_arguments():
    with pytest.raises(ValueError, match="official, lmms_eval, vlmevalkit"):
        gqa_accuracy("yes", ["yes"], convention="llava")
    with pytest.raises(ValueError, match="no answer"):
        gqa_accuracy("yes", [])
    with pytest.raises(TypeError):
        gqa_accuracy("yes", "yes")


def _q(answer, structural, group, balanced=True):
    return {"answer": answer, "types": {"structural": structural}, "groups": {"global": group, "local": "x"},
            "isBalanced": balanced}


QUESTIONS = {
    "1": _q("yes", "verify", "g1"),
    "2": _q("cat", "query", "g2"),
    "3": _q("dog", "query", "g2"),
    "4": _q("no", "logic", "g1"),
    "5": _q("red", "query", "g3", balanced=False),  # not counted, and needs no prediction
    "6": _q("left", "choose", None),  # no global group: counted in accuracy, not in the distribution
}


def test_gqa_scores_hand_computed():
    predictions = {"1": "yes", "2": "Cat", "3": "dog", "4": "no", "6": "right"}
    scores = gqa_scores(predictions, QUESTIONS)
    # EVAL: balanced questions 1, 2, 3, 4, 6; right: 1, 3, 4
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["open"] == pytest.approx(1 / 2)  # structural 'query': 2 (wrong, case), 3
    assert scores["binary"] == pytest.approx(2 / 3)  # verify, logic, choose: 1, 4 right, 6 wrong
    # EVAL chiSquare: g1 gold {yes: 1, no: 1} = predicted: 0; g2 gold {cat: 1, dog: 1}, predicted {Cat: 1, dog: 1}:
    # (0 - 1)^2 / 1 + 0 = 1; weighted by size (2 each): (0 * 2 + 1 * 2) / 4 = 0.5, then / 100
    assert scores["distribution"] == pytest.approx(0.005)
    assert [gqa_answer_type(QUESTIONS[q]) for q in "1246"] == ["binary", "open", "binary", "binary"]


def test_gqa_scores_needs_every_balanced_prediction():
    with pytest.raises(KeyError, match="1 balanced"):
        gqa_scores({"1": "yes", "2": "cat", "3": "dog", "4": "no"}, QUESTIONS)


def test_gqa_scores_without_groups_leaves_out_the_distribution():
    questions = {"1": {"answer": "yes", "types": {"structural": "verify"}, "isBalanced": True}}
    assert gqa_scores({"1": "yes"}, questions) == {"accuracy": 1.0, "binary": 1.0, "open": 0.0}
