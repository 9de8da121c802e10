"""OCRBench, WTQ and TabFact (tables as images): readers on small files in their distributed layouts (records typed by
hand in the documented shape) and the official scorers on hand-computed cases.

Rule sources, named per case:
  OCR     Yuliang-Liu/MultimodalOCR OCRBench/example.py (794c36d6), the scoring at the end of its main
  OCR-VK  open-compass/VLMEvalKit vlmeval/dataset/image_vqa.py OCRBench.evaluate (e8e78f05)
  OCR-LE  EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/ocrbench/utils.py (75571cfe)
  WTQ     ppasupat/WikiTableQuestions evaluator.py (7d455a5a): normalize, to_value, check_denotation
  TVB     VLMEvalKit vlmeval/dataset/utils/tablevqabench.py evaluate_wtq / evaluate_tabfact (+ TableVQABench.evaluate)
  DOCOWL  X-PLUG/mPLUG-DocOwl DocOwl1.5 evaluation/due_benchmarks_eval.py, due_evaluator/scorers/wtq_scorer.py,
          evaluation/evaluator.py exact_match (f91a7685)
"""
import base64
import json

import pytest

from mm1_jax.eval.readers.ocr import read_ocrbench
from mm1_jax.eval.readers.tables import read_tabfact, read_wtq
from mm1_jax.eval.scorers import ocrbench as ocr
from mm1_jax.eval.scorers import wtq

IMG = {k: f"table-image-{k}".encode() * 8 for k in range(1, 5)}  # base64 over 64 characters


def b64(data):
    return base64.b64encode(data).decode()


def tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header] + rows) + "\n")
    return str(path)


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


# ================================================================================================ OCRBench reader
HME_ANSWER = "B a = C H = \\frac { 9 - 1 } { 2 } = 4\n"
OCRBENCH_JSON = [
    {"dataset_name": "IIIT5K", "id": 2843, "image_path": "IIIT5K/test/918_1.png",
     "question": "what is written in the image?", "answers": "CENTRE", "type": "Regular Text Recognition"},
    {"dataset_name": "ctw", "id": 54, "image_path": "ctw/imgs/000000055.jpg",
     "question": "what is written in the image?", "answers": ["ANTONIOS", "ANTONIO'S"],
     "type": "Irregular Text Recognition"},
    {"dataset_name": "HME100k", "id": 23956, "image_path": "HME100K/test/test_images/test_29196.jpg",
     "question": "Please write out the expression of the formula in the image using LaTeX format.",
     "answers": HME_ANSWER, "type": ocr.HME_TYPE},
    {"dataset_name": "svt", "id": 54, "image_path": "svt/1.jpg", "question": "what is written in the image?",
     "answers": "PUB", "type": "Regular Text Recognition"},  # the id repeats another dataset's: ids are not unique
    {"dataset_name": "svt", "id": 7, "image_path": "svt/2.jpg", "question": "q", "answers": 7,
     "type": "Regular Text Recognition"},
    {"dataset_name": "svt", "id": 8, "image_path": "svt/missing.jpg", "question": "q", "answers": "X",
     "type": "Regular Text Recognition"},
]


def test_ocrbench_json(tmp_path):
    for rec in OCRBENCH_JSON[:5]:
        (tmp_path / "OCRBench_Images" / rec["image_path"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "OCRBench_Images" / rec["image_path"]).write_bytes(b"x")
    (tmp_path / "OCRBench.json").write_text(json.dumps(OCRBENCH_JSON))
    items, skipped = read_ocrbench("ocrbench", annotations=str(tmp_path / "OCRBench.json"),
                                   images=str(tmp_path / "OCRBench_Images"))
    assert [i.id for i in items] == ["0", "1", "2", "3"]
    assert items[0].images == [str(tmp_path / "OCRBench_Images" / "IIIT5K/test/918_1.png")]
    assert items[0].answers == ["CENTRE"] and items[1].answers == ["ANTONIOS", "ANTONIO'S"]
    assert items[2].meta == {"dataset_name": "HME100k", "type": ocr.HME_TYPE, "source_id": 23956}
    assert items[3].meta["source_id"] == 54 and items[2].answers == [HME_ANSWER]
    why = reasons(skipped)
    assert "OCRBench.json: [4]: field 'answers' is a number" in why["4"]
    assert "svt/missing.jpg' does not exist" in why["5"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"'ocrbench'.*bad\.json: expected a JSON list of questions"):
        read_ocrbench("ocrbench", annotations=str(tmp_path / "bad.json"), images=str(tmp_path))


def test_ocrbench_tsv(tmp_path):
    path = tsv(tmp_path / "OCRBench.tsv", ["index", "image", "question", "answer", "category"], [
        [0, b64(IMG[1]), "what is written in the image?", "['CENTRE']", "Regular Text Recognition"],
        [1, b64(IMG[2]), "formula?", str([HME_ANSWER]), ocr.HME_TYPE],
        [2, b64(IMG[3]), "q", "CENTRE", "Regular Text Recognition"],
    ])
    items, skipped = read_ocrbench("ocrbench", annotations=path)
    assert [(i.id, i.answers, i.images, i.meta["type"]) for i in items] == [
        ("0", ["CENTRE"], [IMG[1]], "Regular Text Recognition"), ("1", [HME_ANSWER], [IMG[2]], ocr.HME_TYPE)]
    assert "row 3: answer 'CENTRE' is not a Python literal" in reasons(skipped)["2"]
    with pytest.raises(ValueError, match=r"OCRBench2\.tsv: expected VLMEvalKit's OCRBench TSV .* lacks 'category'"):
        read_ocrbench("ocrbench", annotations=tsv(tmp_path / "OCRBench2.tsv", ["index", "image", "question",
                                                                                "answer"], [[0, "x", "q", "[]"]]))


# ================================================================================================ OCRBench scorer
OCR_CASES = [
    # prediction, answers, dataset_name, question_type, convention, expected, rule
    ("The word is centre.", "CENTRE", "IIIT5K", "", "official", 1, "OCR: lower-cased answer contained in the prediction"),
    ("CENTER", "CENTRE", "IIIT5K", "", "official", 0, "OCR: containment, no edit tolerance"),
    ("antonio's", ["ANTONIOS", "ANTONIO'S"], "ctw", "", "official", 1, "OCR: any of a list of answers"),
    ("news agency", "NEWS\nAGENCY", "WordArt", "", "official", 1, "OCR: newlines become spaces"),
    ("  Pub  ", " PUB ", "svt", "", "official", 1, "OCR: both stripped"),
    ("anything", "  ", "svt", "", "official", 1, "OCR: an answer empty after stripping is in every prediction"),
    ("$Ba=CH=\\frac{9-1}{2}=4$", HME_ANSWER, "HME100k", "", "official", 1,
     "OCR: HME100k: spaces and newlines deleted, then containment"),
    ("x + y", "x+y", "HME100k", "", "official", 1, "OCR: HME100k ignores spaces..."),
    ("x + y", "x+y", "FUNSD", "", "official", 0, "OCR: ...the text rule keeps them"),
    ("X+Y", "x+y", "HME100k", "", "official", 0, "OCR: HME100k is case-sensitive..."),
    ("X+Y", "x+y", "FUNSD", "", "official", 1, "OCR: ...the text rule is not"),
    (None, "x", "FUNSD", "", "official", None, "OCR: no prediction: not scored"),
    ("x + y", "x+y", "", ocr.HME_TYPE, "vlmevalkit", 1, "OCR-VK: the formula rule by category"),
    ("x + y", "x+y", "", ocr.HME_TYPE, "official", 0, "OCR: by dataset_name, which this record lacks"),
    ("ＣＥＮＴＲＥ", "CENTRE", "IIIT5K", "", "official", 0, "OCR: fullwidth letters are other characters"),
    ("ＣＥＮＴＲＥ", "CENTRE", "IIIT5K", "", "lmms_eval", 1, "OCR-LE: fullwidth ASCII folded first"),
]


@pytest.mark.parametrize("prediction, answers, dataset, qtype, convention, expected, rule", OCR_CASES,
                         ids=[c[-1] for c in OCR_CASES])
def test_ocrbench_correct(prediction, answers, dataset, qtype, convention, expected, rule):
    assert ocr.ocrbench_correct(prediction, answers, dataset, qtype, convention) == expected


def test_ocrbench_scores():
    counts = dict.fromkeys(ocr.RECOGNITION_TYPES, 50) | {"Scene Text-centric VQA": 200, "Doc-oriented VQA": 200,
                                                         "Key Information Extraction": 200, ocr.HME_TYPE: 100}
    records = []
    for kind, n in counts.items():
        right = {"Regular Text Recognition": 50, "Scene Text-centric VQA": 100, ocr.HME_TYPE: 10}.get(kind, 0)
        records += [{"type": kind, "dataset_name": "d", "result": int(j < right)} for j in range(n)]
    records[-1]["result"] = None  # an unscored HME record (it was wrong anyway)
    assert len(records) == 1000
    table = ocr.ocrbench_scores(records)
    assert table["Text Recognition"] == 50 and table["Scene Text-centric VQA"] == 100
    assert table[ocr.HME_TYPE] == 10 and table["Final Score"] == 160 and "Final Score Norm" not in table
    assert ocr.ocrbench_scores(records, "vlmevalkit")["Final Score Norm"] == 16.0
    # OCR: any other number of records: per dataset_name, correct / all its records (an unscored one included)
    subset = [{"type": "t", "dataset_name": "IIIT5K", "result": 1}, {"type": "t", "dataset_name": "IIIT5K",
                                                                      "result": None},
              {"type": "t", "dataset_name": "HME100k", "result": 1}]
    assert ocr.ocrbench_scores(subset) == {"IIIT5K": 0.5, "HME100k": 1.0}
    with pytest.raises(ValueError, match="unknown convention 'x'; known: official, vlmevalkit, lmms_eval"):
        ocr.ocrbench_correct("a", "a", convention="x")


# ================================================================================================ WTQ scorer
WTQ_CASES = [
    # prediction items, targets, expected, rule (WTQ unless named)
    (["Italy"], ["Italy"], True, "the same string"),
    (["italy."], ["Italy"], True, "normalize: lower-cased, the final '.' removed"),
    (["Italy (country)"], ["Italy"], True, "normalize: trailing ' (...)' details removed"),
    (["Italy[1]"], ["Italy"], True, "normalize: trailing citations removed"),
    (['"Italy"'], ["Italy"], True, "normalize: outer double quotes removed"),
    (["café"], ["cafe"], True, "normalize: diacritics removed"),
    (["–5"], ["-5"], True, "normalize: an en dash is '-': the string forms match though '–5' is no number"),
    (["Italia"], ["Italy"], False, "different strings"),
    (["1000"], ["1,000"], False, "without a CoreNLP value '1,000' is a string, and '1000' is not its form"),
    (["2.0000001"], ["2"], True, "numbers within 1e-6 (the prediction becomes the integer 2)"),
    (["2.001"], ["2"], False, "numbers further apart"),
    (["1990"], ["1990-xx-xx"], True, "a year-only date is the number 1990"),
    (["xx-01-12"], ["1990-01-12"], False, "dates must agree on every field"),
    (["1990-01-12"], ["1990-01-12"], True, "equal dates"),
    (["a", "b"], ["a"], False, "the denotations' sizes differ"),
    (["a", "a"], ["a"], True, "predicted values are a set: 'a' twice is one value"),
    (["b", "a"], ["a", "b"], True, "order does not matter"),
    (["1_000"], ["1000"], False, "Python 2 parses no '_' separators: a string"),
]


@pytest.mark.parametrize("prediction, targets, expected, rule", WTQ_CASES, ids=[c[-1] for c in WTQ_CASES])
def test_wtq_official(prediction, targets, expected, rule):
    assert wtq.wtq_correct(prediction, targets) is expected


def test_wtq_official_canon_tabs_and_values():
    # the tagged release's CoreNLP value makes '1,000' the number 1000
    assert wtq.wtq_correct(["1000"], ["1,000"], canons=["1000"]) is True
    assert wtq.wtq_correct("a\tb", ["b", "a"]) is True  # a prediction line's items are tab-separated
    assert wtq.normalize('  "Name"  [2] ') == "name"  # the loop: citation, then the quotes
    assert wtq.normalize("x (a) (b)") == "x" and wtq.normalize("(a)") == "(a)"  # details, not at the start
    assert repr(wtq.to_value("xx-01-02")) == "D(-1, 1, 2)['xx-01-02']"
    assert wtq.DateValue(1990, 5, -1).normalized == "1990-5--1"  # the official prints an unknown day as -1
    assert wtq.parse_number("nan") is None and wtq.parse_number("1e3") == 1000.0
    with pytest.raises(TypeError, match="not one string"):
        wtq.wtq_correct("a", "a")


WTQ_CONVENTION_CASES = [
    # prediction, targets, convention, expected, rule
    ("Answer: Apple||Banana", ["Apple", "Banana"], "tablevqabench", True, "TVB: 'Answer: ' dropped, || splits items"),
    ("Apple, Banana", ["Apple", "Banana"], "tablevqabench", False, "TVB: a comma does not split"),
    ("a\\pb", ["a|b"], "tablevqabench", True, "TVB: \\p is an escaped bar inside one item"),
    ("1_000", ["1000"], "tablevqabench", True, "TVB: Python 3's int() takes '1_000'"),
    ("italy\n", ["Italy"], "docowl", True, "DOCOWL: stripped, newlines deleted, upper-cased then normalized"),
    ("a, b", ["a", "b"], "docowl", False, "DOCOWL: the answer is one item"),
    ("ß", ["ss"], "docowl", True, "DOCOWL: upper-casing first makes 'ß' 'SS'"),
    (["ß"], ["ss"], "official", False, "WTQ: no upper-casing: 'ß' stays"),
]


@pytest.mark.parametrize("prediction, targets, convention, expected, rule", WTQ_CONVENTION_CASES,
                         ids=[c[-1] for c in WTQ_CONVENTION_CASES])
def test_wtq_conventions(prediction, targets, convention, expected, rule):
    assert wtq.wtq_correct(prediction, targets, convention=convention) is expected


def test_wtq_vlmevalkit_fails_on_nan_and_scores():
    with pytest.raises(ValueError, match="VLMEvalKit's evaluate_wtq fails"):
        wtq.wtq_correct("nan", ["5"], convention="tablevqabench")
    assert wtq.wtq_correct(["nan"], ["5"]) is False  # the official catches it: 'nan' is a string
    assert wtq.wtq_scores([True, False, True, True]) == {"accuracy": 0.75, "correct": 3, "total": 4}
    with pytest.raises(ValueError, match="unknown convention 'vlmevalkit'; known: official, tablevqabench, docowl"):
        wtq.wtq_correct("a", ["a"], convention="vlmevalkit")


# ================================================================================================ TabFact scorer
TABFACT_CASES = [
    # prediction, answer, convention, expected, rule
    ("True", "1", "official", 1, "TVB: 'true' in the lower-cased prediction, gold 1"),
    ("The statement is true.", "1", "official", 1, "TVB: containment anywhere"),
    ("untrue", "1", "official", 1, "TVB: ...even inside a word"),
    ("False", "1", "official", 0, "TVB: 'false' against gold 1"),
    ("false", "0", "official", 1, "TVB: 'false', gold 0"),
    ("True or False", "1", "official", None, "TVB: both words: unparsed"),
    ("yes", "1", "official", 0, "TVB: 'yes' is not read"),
    (None, "0", "official", 0, "TVB: no prediction reads as 'none'"),
    ("True", "True", "docowl", 1, "DOCOWL: exact match"),
    ("true", "True", "docowl", 0, "DOCOWL: case-sensitive"),
    ("True\n", "True.", "docowl", 1, "DOCOWL: newlines deleted, stripped, the gold's final '.' removed"),
]


@pytest.mark.parametrize("prediction, answer, convention, expected, rule", TABFACT_CASES,
                         ids=[c[-1] for c in TABFACT_CASES])
def test_tabfact(prediction, answer, convention, expected, rule):
    assert wtq.tabfact_correct(prediction, answer, convention) == expected


def test_tabfact_scores():
    assert wtq.tabfact_scores([1, 0, None, 1]) == {"accuracy": 0.5, "correct": 2, "total": 4, "unparsed": 1}


# ================================================================================================ table readers


def test_tablevqa_bench_tsv(tmp_path):
    path = tsv(tmp_path / "tablevqa-bench.tsv", ["index", "image", "question", "answer", "split"], [
        [0, b64(IMG[1]), "which country had the most cyclists finish within the top 10?", "Italy", "vwtq"],
        [1, b64(IMG[2]), "name two teams", "Apple|Ban\\pana", "vwtq"],
        [2, b64(IMG[3]), "the milwaukee buck win 6 game in the 2010 - 11 season", "1", "vtabfact"],
        [3, b64(IMG[3]), "only the top team score above the average of 8.8", "yes", "vtabfact"],
        [4, b64(IMG[4]), "what was the total?", "$3,852 million", "fintabnetqa"],
        [5, "2", "a question on row 2's table", "0", "vtabfact"],
    ])
    items, skipped = read_wtq("wtq", annotations=path)
    assert [(i.id, i.answers, i.images) for i in items] == [("0", ["Italy"], [IMG[1]]),
                                                            ("1", ["Apple", "Ban|ana"], [IMG[2]])]
    assert items[1].meta == {"answer": "Apple|Ban\\pana", "split": "vwtq"} and skipped == []
    facts, skipped = read_tabfact("tabfact", annotations=path)
    assert [(i.id, i.answers, i.images) for i in facts] == [("2", ["1"], [IMG[3]]), ("5", ["0"], [IMG[3]])]
    assert "row 4: answer 'yes' is neither '1' (entailed) nor '0' (refuted)" in reasons(skipped)["3"]
    with pytest.raises(ValueError, match="split 'wtq' is not a TableVQA-Bench split"):
        read_wtq("wtq", annotations=path, split="wtq")
    with pytest.raises(ValueError, match=r"t2\.tsv: expected TableVQA-Bench's TSV .* lacks 'split'"):
        read_wtq("wtq", annotations=tsv(tmp_path / "t2.tsv", ["index", "image", "question", "answer"], [[0, "a",
                                                                                                        "q", "x"]]))


def test_docowl_downstream_jsonl(tmp_path):
    (tmp_path / "imgs" / "WikiTableQuestions").mkdir(parents=True)
    (tmp_path / "imgs" / "WikiTableQuestions" / "t1.png").write_bytes(b"x")
    lines = [
        {"image": ["imgs/WikiTableQuestions/t1.png"], "messages": [
            {"role": "user", "content": "<|image|>which country had the most cyclists finish within the top 10?"},
            {"role": "assistant", "content": "Italy"}]},
        {"image": ["imgs/WikiTableQuestions/t1.png"], "messages": [{"role": "user", "content": "<|image|>q"}]},
    ]
    path = tmp_path / "test" / "WikiTableQuestions_test.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "{not json\n")
    items, skipped = read_wtq("wtq", annotations=str(path), images=str(tmp_path))
    assert [(i.id, i.question, i.answers, i.images) for i in items] == [
        ("1", "which country had the most cyclists finish within the top 10?", ["Italy"],
         [str(tmp_path / "imgs" / "WikiTableQuestions" / "t1.png")])]
    why = reasons(skipped)
    assert "line 2: field 'messages' is not [user, assistant]" in why["2"] and "not valid JSON" in why["3"]
    with pytest.raises(ValueError, match=r"'tabfact'.*image folder .* does not exist"):
        read_tabfact("tabfact", annotations=str(path), images=str(tmp_path / "nope"))
