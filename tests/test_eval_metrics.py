"""CIDEr-D against pycocoevalcap's Cider, and the embedded benchmark's own metrics (the benchmarks' official scorers:
tests/test_scorers_*.py)."""
import numpy as np
import pytest

from mm1_jax.eval import metrics
from tests.support import require_java_ptb


def test_cider_d_equals_pycocoevalcap():
    cider_ref = pytest.importorskip("pycocoevalcap.cider.cider")
    refs = {
        "1": ["a red circle and a blue square", "a red circle next to a blue square", "two shapes red and blue"],
        "2": ["a green triangle", "one green triangle on grey"],
        "3": ["a man riding a horse on a beach", "a person rides a brown horse", "horse and rider by the sea"],
        "4": ["a plate of food with broccoli", "broccoli and rice on a white plate"],
        "5": ["a cat", "a small cat sleeping on a sofa"],
    }
    cands = {"1": "a red circle and a blue square", "2": "a green triangle triangle triangle",
             "3": "a horse", "4": "a white plate with broccoli and rice and more food on it", "5": "dog"}
    expected_mean, expected_each = cider_ref.Cider().compute_score({k: v for k, v in refs.items()},
                                                                  {k: [v] for k, v in cands.items()})
    mean, each = metrics.cider(refs, cands)
    assert mean == pytest.approx(float(expected_mean), rel=1e-9)
    np.testing.assert_allclose([each[k] for k in refs], expected_each, rtol=1e-9)
    assert mean > 0.1  # not a trivial agreement at zero


def test_embedded_vqa_accuracy_normalises_always():
    """The embedded benchmark's VQA accuracy (ours): vqaEval.py's leave-one-out and normalisation, applied also when
    the humans agree (the official scorer, `scorers.vqa.vqa_accuracy`, then compares strings as written)."""
    humans = ["2"] * 2 + ["3"] * 8
    # "2": leaving out one of the two "2"s leaves 1 match (1/3); leaving out any "3" leaves 2 matches (2/3)
    assert metrics.embedded_vqa_accuracy("two", humans) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    assert metrics.embedded_vqa_accuracy("3", humans) == 1.0
    assert metrics.embedded_vqa_accuracy("4", humans) == 0.0
    humans = ["yes"] * 3 + ["no"] * 7  # 3 matches: the 7 subsets keeping all three give 1, the other 3 give 2/3
    assert metrics.embedded_vqa_accuracy("Yes.", humans) == pytest.approx((7 * 1 + 3 * (2 / 3)) / 10)
    assert metrics.embedded_vqa_accuracy("Yes.", ["yes"] * 10) == 1.0


def test_boxes_and_exact_match():
    assert metrics.parse_box("<box> 3 , 32 , 26 , 56 </box>") == (3, 32, 26, 56)
    assert metrics.parse_box("no box here") is None
    assert metrics.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert metrics.exact_match("Red .", ["red ."]) == 1.0
    assert metrics.exact_match("red square", ["red ."]) == 0.0


def test_ptb_tokenisation_is_the_default_and_changes_cider():
    """CIDEr as coco-caption computes it: PTB tokenisation (pycocoevalcap's, Java) by default when it can run. On
    real caption text it differs from the regex fallback (possessives split, hyphenated words kept, brackets named),
    and so does the score; with PTB tokens ours equals pycocoevalcap's Cider."""
    require_java_ptb(metrics.ptb_available())
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = ["A man's black-and-white photo, taken in 1990.", "A black-and-white photo of a man (circa 1990).",
            "Old photo: a man in black and white."]
    cand = "A man's black-and-white photo."
    ptb, used = metrics.tokenize_captions(refs + [cand])
    official = PTBTokenizer().tokenize({str(i): [{"caption": t}] for i, t in enumerate(refs + [cand])})
    assert used == "ptb" and ptb == [official[str(i)][0] for i in range(4)]
    assert ptb[0] == "a man 's black-and-white photo taken in 1990"
    regex, used = metrics.tokenize_captions(refs + [cand], "regex")
    assert used == "regex" and regex[0] == "a man's black and white photo taken in 1990"
    corpus = {"x": (refs, cand), "y": (["two dogs run on the grass", "dogs running"], "two dogs running")}

    def score(tokenizer):
        texts = [t for r, c in corpus.values() for t in r + [c]]
        toks, _ = metrics.tokenize_captions(texts, tokenizer)
        out, at = {}, 0
        for key, (r, _) in corpus.items():
            out[key] = (toks[at:at + len(r)], toks[at + len(r)])
            at += len(r) + 1
        return out

    with_ptb, with_regex = score("ptb"), score("regex")
    ours = metrics.cider({k: v[0] for k, v in with_ptb.items()}, {k: v[1] for k, v in with_ptb.items()})[0]
    reference = Cider().compute_score({k: v[0] for k, v in with_ptb.items()}, {k: [v[1]] for k, v in with_ptb.items()})
    assert ours == pytest.approx(reference[0], rel=1e-9)
    fallback = metrics.cider({k: v[0] for k, v in with_regex.items()}, {k: v[1] for k, v in with_regex.items()})[0]
    assert abs(fallback - ours) > 0.05
    with pytest.raises(ValueError, match="eval.caption_tokenizer='bpe' is not one of auto, ptb, regex"):
        metrics.tokenize_captions(["a"], "bpe")
