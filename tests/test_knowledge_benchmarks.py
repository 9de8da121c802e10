"""MMMU and MathVista: readers on small files in their official layouts (records typed by hand in the shape the
releases document) and the official scorers on hand-computed cases.

Rule sources, named per case:
  MMMU-EU   MMMU-Benchmark/MMMU mmmu/utils/eval_utils.py (bb0b95a9): parse_multi_choice_response, parse_open_response,
            normalize_str, extract_numbers, eval_multi_choice, eval_open
  MMMU-ME   mmmu/main_eval_only.py + mmmu/utils/data_utils.py DOMAIN_CAT2SUB_CAT (subject / domain / Overall)
  MV-EX     lupantech/MathVista evaluation/extract_answer.py (53d52587) extract_answer
  MV-CS     lupantech/MathVista evaluation/calculate_score.py normalize_extracted_answer, get_most_similar, safe_equal
"""
import base64
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm1_jax.eval.readers.knowledge import read_mathvista, read_mmmu
from mm1_jax.eval.scorers import mathvista as mv
from mm1_jax.eval.scorers import mmmu

IMG = {k: f"image-{k}".encode() * 10 for k in range(1, 8)}  # passed on undecoded; base64 over 64 characters
# (a shorter image cell is another row's index to VLMEvalKit)


def reasons(skipped):
    return {s["id"]: s["reason"] for s in skipped}


# ================================================================================================ MMMU reader


def mmmu_row(qid, question, options, answer, qtype="multiple-choice", images=(1,)):
    row = {"id": qid, "question": question, "options": options, "explanation": "", "answer": answer,
           "img_type": "['Paintings']", "topic_difficulty": "Easy", "question_type": qtype, "subfield": "Art"}
    for k in range(1, 8):
        row[f"image_{k}"] = {"bytes": IMG[k], "path": f"{qid}_{k}.png"} if k in images else None
    return row


def write_parquet(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    fields = [(c, pa.string()) for c in ("id", "question", "options", "explanation", "answer", "img_type",
                                         "topic_difficulty", "question_type", "subfield")]
    fields += [(f"image_{k}", image) for k in range(1, 8)]
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(fields)), path)


@pytest.fixture
def mmmu_hub(tmp_path):
    """The hub layout: <Subject>/validation-00000-of-00001.parquet (and a dev file that must not be read)."""
    write_parquet(tmp_path / "Art" / "validation-00000-of-00001.parquet", [
        mmmu_row("validation_Art_1", "Who painted <image 1>?", "['Monet', 'Manet', 'Degas', 'Renoir']", "B"),
        mmmu_row("validation_Art_2", "Compare <image 1> and <image 2>. Which option is the style of <image 1>?",
                 "['<image 3>', '<image 4>']", "A", images=(1, 2, 3, 4)),
        mmmu_row("validation_Art_3", "Which is right? <image 1>", "['a', 'b']", "C"),  # answer out of range
        mmmu_row("validation_Art_4", "<image 1> and <image 2>?", "['a', 'b']", "A", images=(1,)),  # no image_2
    ])
    write_parquet(tmp_path / "Math" / "validation-00000-of-00001.parquet", [
        mmmu_row("validation_Math_1", "<image 1> What is x?", "[]", "1.5", qtype="open"),
        mmmu_row("validation_Math_2", "Where is it? <image 1>", "[]", "['Tampa', 'Florida']", qtype="open"),
        mmmu_row("validation_Math_3", "No placeholder here.", "['1', '2']", "A"),
    ])
    write_parquet(tmp_path / "Math" / "dev-00000-of-00001.parquet", [mmmu_row("dev_Math_1", "q", "['a']", "A")])
    return tmp_path


def test_mmmu_hub_parquet(mmmu_hub):
    items, skipped = read_mmmu("mmmu", annotations=str(mmmu_hub))
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["validation_Art_1", "validation_Art_2", "validation_Math_1", "validation_Math_2",
                             "validation_Math_3"]  # the dev file is not read
    art1 = by_id["validation_Art_1"]
    assert (art1.question, art1.images, art1.options) == ("Who painted <image>?", [IMG[1]],
                                                         ["Monet", "Manet", "Degas", "Renoir"])
    assert (art1.answer_index, art1.answers, art1.meta["answer"], art1.meta["subject"]) == (1, ["Manet"], "B", "Art")
    # multi-image: the question's placeholders in order (a repeat repeats the image), then the options' images
    art2 = by_id["validation_Art_2"]
    assert art2.question == "Compare <image> and <image>. Which option is the style of <image>?"
    assert art2.images == [IMG[1], IMG[2], IMG[1], IMG[3], IMG[4]]
    assert art2.meta["image_numbers"] == [1, 2, 1, 3, 4] and art2.meta["option_images"] is True
    assert art2.options == ["<image 3>", "<image 4>"]
    # open questions: no options, the gold kept as the scorer takes it (a string, or the list a literal holds)
    math1, math2 = by_id["validation_Math_1"], by_id["validation_Math_2"]
    assert (math1.options, math1.answer_index, math1.answers, math1.meta["answer"]) == ([], -1, ["1.5"], "1.5")
    assert math1.meta["question_type"] == "open" and math1.images == [IMG[1]]
    assert math2.answers == ["Tampa", "Florida"] and math2.meta["answer"] == ["Tampa", "Florida"]
    # no placeholder: image_1, as data_utils.py process_single_sample takes it
    assert by_id["validation_Math_3"].images == [IMG[1]]
    why = reasons(skipped)
    assert set(why) == {"validation_Art_3", "validation_Art_4"}
    assert "answer 'C' is not one of the option letters A-B" in why["validation_Art_3"]
    assert "validation-00000-of-00001.parquet: row 3: refers to <image 2> but its image_2 is empty" in \
        why["validation_Art_4"]


def test_mmmu_one_parquet_file_and_bad_files(mmmu_hub, tmp_path):
    items, _ = read_mmmu("mmmu", annotations=str(mmmu_hub / "Math" / "validation-00000-of-00001.parquet"))
    assert len(items) == 3
    with pytest.raises(ValueError, match=r"'mmmu'.*holds no test-\*\.parquet"):
        read_mmmu("mmmu", annotations=str(tmp_path / "Art"), split="test")
    bad = tmp_path / "broken.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ValueError, match=r"'mmmu'.*broken\.parquet: not a readable parquet file"):
        read_mmmu("mmmu", annotations=str(bad))
    other = tmp_path / "other.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "x", "text": "y"}]), other)
    with pytest.raises(ValueError, match=r"other\.parquet: expected MMMU columns .* lacks question, options, answer"):
        read_mmmu("mmmu", annotations=str(other))
    with pytest.raises(ValueError, match=r"needs config\.eval\.mmmu\.annotations"):
        read_mmmu("mmmu", annotations="")


def b64(data):
    return base64.b64encode(data).decode()


def tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header] + rows) + "\n")
    return str(path)


def test_mmmu_vlmevalkit_tsv(tmp_path):
    header = ["index", "question", "A", "B", "C", "D", "answer", "category", "image", "split", "id"]
    listed = str([b64(IMG[1]), b64(IMG[2])])
    path = tsv(tmp_path / "MMMU_DEV_VAL.tsv", header, [
        [0, "<image 1> dev question", "a", "b", "nan", "nan", "A", "Art", b64(IMG[1]), "dev", "dev_Art_1"],
        [1, "Compare <image 2> with <image 1>", "x", "y", "z", "nan", "C", "Art", listed, "validation",
         "validation_Art_7"],
        [2, "<image 1> How many?", "nan", "nan", "nan", "nan", "4", "Math", "1", "validation", "validation_Math_9"],
        [3, "<image 3> too far", "a", "b", "nan", "nan", "A", "Art", b64(IMG[1]), "validation", "validation_Art_8"],
    ])
    items, skipped = read_mmmu("mmmu", annotations=path)
    assert [i.id for i in items] == ["validation_Art_7", "validation_Math_9"]
    art, math = items
    assert (art.question, art.images, art.options, art.answer_index) == (
        "Compare <image> with <image>", [IMG[2], IMG[1]], ["x", "y", "z"], 2)
    assert art.meta["category"] == "Art" and art.meta["image_numbers"] == [2, 1]
    # no options: an open question; its image cell "1" is row 1's index, whose images it shares
    assert (math.meta["question_type"], math.options, math.answers, math.images) == ("open", [], ["4"], [IMG[1]])
    assert "row 4: refers to <image 3> but its image cell holds 1 image(s)" in reasons(skipped)["3"]  # by index
    with pytest.raises(ValueError, match=r"MMMU_BAD\.tsv: expected VLMEvalKit's MMMU TSV .* lacks 'image'"):
        read_mmmu("mmmu", annotations=tsv(tmp_path / "MMMU_BAD.tsv", ["index", "question", "answer"], [[0, "q", "A"]]))


# ================================================================================================ MMMU scorer
LETTERS, INDEX2ANS = mmmu.choice_letters(["cat", "dog", "bird", "fish"])

MULTI_CHOICE = [
    # response, expected letter, rule (MMMU-EU parse_multi_choice_response)
    ("(B)", "B", "a bracketed letter"),
    ("The answer is (C).", "C", "a bracketed letter inside a sentence"),
    ("B", "B", "a bare letter: ' B ' after padding with spaces"),
    ("B.", "B", "edge punctuation stripped before padding"),
    ("'D'", "D", "the quote is edge punctuation too"),
    ("(A) is wrong, (D) is right", "D", "several bracketed letters: the rightmost last occurrence"),
    ("(D) is right, not (A)", "A", "...still the rightmost, whatever the reading"),
    ("A or C", "C", "several bare letters: the rightmost"),
    ("(A) and also B", "A", "brackets win: bare letters are not looked at once a bracketed one is found"),
    ("I am quite sure that it shows a dog here", "B", "no letter, more than 5 words: the option text (content)"),
    ("it is a dog and not a cat", "A", "content answers: the rightmost last occurrence ('cat' at the end)"),
    ("Clearly the dog sat on the hot cat mat", "A", "...'cat' occurs after 'dog'"),
]


@pytest.mark.parametrize("response, expected, rule", MULTI_CHOICE, ids=[r[2] for r in MULTI_CHOICE])
def test_mmmu_multi_choice_parse(response, expected, rule):
    rng = random.Random(0)  # never drawn from here
    assert mmmu.parse_multi_choice_response(response, LETTERS, INDEX2ANS, rng) == expected
    assert rng.random() == random.Random(0).random()


def test_mmmu_random_fallback_is_seeded_42():
    # MMMU-EU: no candidate -> random.choice(all_choices), Python's generator seeded 42 at import; a short response
    # ('a dog', 2 words) is not searched for option texts
    expected = random.Random(42)
    rng = mmmu.mmmu_rng()
    draws = [mmmu.parse_multi_choice_response(r, LETTERS, INDEX2ANS, rng) for r in ("a dog", "zzz", "no idea")]
    assert draws == [expected.choice(LETTERS) for _ in range(3)]
    assert draws == ["A", "A", "C"]  # random.seed(42); random.choice('ABCD') three times


OPEN_PARSE = [
    # response, expected parsed set, rule (MMMU-EU parse_open_response)
    ("12", {12.0}, "a number alone: float rounded to 2"),
    ("So the answer is 1,234.5 kg", {"1,234.5 kg", 1234.0, 234.5},
     "the tail after an indicator, plus the numbers in it: '1,234' (commas pattern) and '234.5' (simple pattern)"),
    ("Paris", {"paris"}, "no indicator: the whole lower-cased response"),
    ("x", {" x", "x "}, "one character: two padded strings"),
    ("The value is 3.14159.", {3.14}, "the final '.' stripped, the number rounded to 2 places"),
    ("thus y = 7", {7.0}, "'=' counts on the last line, and its tail '7' is the shortest"),
    ("so it is 5\nthe result is 6", {5.0, 6.0}, "lines are split on newlines, each line's shortest tail kept"),
    ("Step one. Then we get 4", {"step one. then we get 4", 4.0},
     "the sentence regex needs a capital after '. ' but runs on lower-cased text: no split"),
]


@pytest.mark.parametrize("response, expected, rule", OPEN_PARSE, ids=[r[2] for r in OPEN_PARSE])
def test_mmmu_open_parse(response, expected, rule):
    assert set(mmmu.parse_open_response(response)) == expected


@pytest.mark.parametrize("text, expected", [
    ("1,234 and -7.5", ["1,234", "234", "-7.5"]),  # the plain pattern also finds '234' (after the comma)
    ("5e3", ["5e3", "3"]),  # ... and the '3' of the exponent
    ("12,3456", ["3456"]),  # MMMU-EU extract_numbers: '12' is followed by ',' (refused), '3456' is not a comma group
])
def test_mmmu_extract_numbers(text, expected):
    assert mmmu.extract_numbers(text) == expected


EVAL_OPEN = [
    # gold, response, expected, rule (MMMU-EU eval_open on parse_open_response)
    ("1.5", "the answer is 1.50", True, "numbers compare as floats rounded to 2"),
    ("1.5", "the answer is 1.504", True, "1.504 rounds to 1.5"),
    ("1.5", "the answer is 1.51", False, "1.51 is not 1.5"),
    ("Transformation", "It is a transformation process", True, "a string gold is CONTAINED in the prediction"),
    ("C", "the answer is cat", False, "one character: ' c' / 'c ' must occur; 'cat' has neither"),
    ("C", "the answer is c", True, "...the parsed 'c' is padded the same way, so it matches"),
    ("C", "the answer is c option", True, "...'c ' does occur in 'c option'"),
    (["Tampa", "Florida"], "It is in florida", True, "a list gold: any of its answers"),
    ("1,000", "the answer is 1000", True, "commas removed before float()"),
    ("7243000", "the answer is 7,243,000 dollars", True, "the comma-grouped number in the tail"),
]


@pytest.mark.parametrize("gold, response, expected, rule", EVAL_OPEN, ids=[r[3] for r in EVAL_OPEN])
def test_mmmu_eval_open(gold, response, expected, rule):
    assert mmmu.mmmu_correct(response, "open", [], gold, mmmu.mmmu_rng()) is expected


def test_mmmu_multi_choice_correct_and_scores():
    assert mmmu.mmmu_correct("(B)", "multiple-choice", ["cat", "dog"], "B", mmmu.mmmu_rng()) is True
    assert mmmu.eval_multi_choice(["A", "B"], "B") and not mmmu.eval_multi_choice("A", "a")  # plain ==
    # MMMU-ME: per-subject acc, domains and Overall weighted by questions; unknown subjects are not counted
    table = mmmu.mmmu_scores({"validation_Art_1": True, "validation_Art_2": False, "validation_Art_Theory_1": True,
                              "validation_Math_1": True, "validation_Nothing_1": True})
    assert table["Art"] == {"num": 2, "acc": 0.5} and table["Art_Theory"] == {"num": 1, "acc": 1.0}
    assert table["Overall-Art and Design"] == {"num": 3, "acc": pytest.approx(2 / 3)}
    assert table["Overall-Science"] == {"num": 1, "acc": 1.0}
    assert table["Overall-Business"] == {"num": 0, "acc": 0}
    assert table["Overall"] == {"num": 4, "acc": 0.75} and "Nothing" not in table
    with pytest.raises(ValueError, match="unknown convention 'lmms_eval'; known: official"):
        mmmu.mmmu_correct("A", "open", [], "A", mmmu.mmmu_rng(), convention="lmms_eval")


# ================================================================================================ MathVista reader
TESTMINI = {
    "1": {"question": "When a spring does work on an object, ... by what distance $d$ is the spring compressed?",
          "image": "images/1.jpg", "choices": None, "unit": None, "precision": 1, "answer": "1.2",
          "question_type": "free_form", "answer_type": "float", "pid": "1",
          "metadata": {"split": "testmini", "language": "english", "img_width": 1514, "img_height": 720,
                       "source": "SciBench", "category": "math-targeted-vqa", "task": "textbook question answering",
                       "context": "scientific figure", "grade": "college", "skills": ["scientific reasoning"]}},
    "2": {"question": "what is the total volume of the measuring cup?", "image": "images/2.jpg", "choices": None,
          "unit": "g", "precision": None, "answer": "1000", "question_type": "free_form", "answer_type": "integer",
          "pid": "2", "metadata": {"language": "english", "source": "VQA2.0", "skills": ["numeric commonsense"]}},
    "3": {"question": "Which color is the largest bar?", "image": "images/3.png", "choices": ["red", "blue"],
          "unit": None, "precision": None, "answer": "blue", "question_type": "multi_choice", "answer_type": "text",
          "pid": "3", "metadata": {"task": "figure question answering", "skills": ["statistical reasoning"]}},
    "4": {"question": "List the values.", "image": "images/4.png", "choices": None, "unit": None, "precision": None,
          "answer": "[2014, 2016]", "question_type": "free_form", "answer_type": "list", "pid": "4", "metadata": {}},
    "5": {"question": "Which?", "image": "images/5.png", "choices": ["a", "b"], "unit": None, "precision": None,
          "answer": "c", "question_type": "multi_choice", "answer_type": "text", "pid": "5", "metadata": {}},
    "6": {"question": "Name it.", "image": "images/6.png", "choices": None, "unit": None, "precision": None,
          "answer": "x", "question_type": "free_form", "answer_type": "text", "pid": "6", "metadata": {}},
    "7": {"question": "How far?", "image": "images/missing.png", "choices": None, "unit": None, "precision": None,
          "answer": "3", "question_type": "free_form", "answer_type": "integer", "pid": "7", "metadata": {}},
}


@pytest.fixture
def mathvista_root(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("1.jpg", "2.jpg", "3.png", "4.png", "5.png", "6.png"):
        (tmp_path / "images" / name).write_bytes(b"x")
    (tmp_path / "testmini.json").write_text(json.dumps(TESTMINI))
    (tmp_path / "query.json").write_text(json.dumps({"2": "Hint: Please answer the question requiring an integer "
                                                          "answer.\nQuestion: what is the total volume?"}))
    return tmp_path


def test_mathvista_testmini(mathvista_root):
    root = mathvista_root
    items, skipped = read_mathvista("mathvista", annotations=str(root / "testmini.json"), images=str(root),
                                    queries=str(root / "query.json"))
    by_id = {i.id: i for i in items}
    assert sorted(by_id) == ["1", "2", "3", "4"]
    one = by_id["1"]
    assert one.images == [str(root / "images" / "1.jpg")] and one.answers == ["1.2"]
    assert one.question == TESTMINI["1"]["question"]  # no query for it: the question
    assert {k: one.meta[k] for k in ("answer_type", "precision", "source", "grade", "skills")} == {
        "answer_type": "float", "precision": 1, "source": "SciBench", "grade": "college",
        "skills": ["scientific reasoning"]}
    assert by_id["2"].question.startswith("Hint: Please answer") and by_id["2"].meta["unit"] == "g"
    three = by_id["3"]
    assert (three.options, three.answer_index, three.meta["question_type"]) == (["red", "blue"], 1, "multi_choice")
    assert by_id["4"].meta["answer"] == "[2014, 2016]" and by_id["4"].options == []
    why = reasons(skipped)
    assert set(why) == {"5", "6", "7"}
    assert "testmini.json: [\"5\"]: answer 'c' is not one of its 2 choices" in why["5"]
    assert "free_form question of answer_type text" in why["6"]
    assert "image file" in why["7"] and "missing.png" in why["7"]
    # the meta is what the scorer takes
    assert mv.mathvista_correct("1.2", by_id["1"].meta) is True


def test_mathvista_tsv_and_bad_files(tmp_path):
    header = ["index", "image", "question", "answer", "question_type", "answer_type", "choices", "precision",
              "unit", "answer_option", "task", "skills"]
    path = tsv(tmp_path / "MathVista_MINI.tsv", header, [
        [1, b64(IMG[1]), "How long?", "1.2", "free_form", "float", "nan", "1.0", "nan", "nan",
         "textbook question answering", "['scientific reasoning']"],
        [3, b64(IMG[3]), "Which color?", "blue", "multi_choice", "text", "['red', 'blue']", "nan", "nan", "B",
         "figure question answering", "['statistical reasoning']"],
        [9, b64(IMG[2]), "Broken", "2", "free_form", "integer", "nan", "nan", "nan", "nan", "t", "['s']", "extra"],
    ])
    items, skipped = read_mathvista("mathvista", annotations=path)
    assert [i.id for i in items] == ["1", "3"]
    assert items[0].meta["precision"] == 1.0 and items[0].meta["skills"] == ["scientific reasoning"]
    assert items[1].options == ["red", "blue"] and items[1].answer_index == 1 and items[1].images == [IMG[3]]
    assert "row 3: has 13 cells, the header 12" in reasons(skipped)["9"]
    with pytest.raises(ValueError, match=r"'mathvista'.*x\.json: expected a JSON object of pid -> problem"):
        (tmp_path / "x.json").write_text("[]")
        read_mathvista("mathvista", annotations=str(tmp_path / "x.json"), images=str(tmp_path))
    with pytest.raises(ValueError, match=r"image folder .* does not exist"):
        (tmp_path / "y.json").write_text("{}")
        read_mathvista("mathvista", annotations=str(tmp_path / "y.json"), images=str(tmp_path / "nope"))


# ================================================================================================ MathVista scorer
FLOAT1 = {"question_type": "free_form", "answer_type": "float", "choices": None, "precision": 1, "answer": "1.2"}
INT = {"question_type": "free_form", "answer_type": "integer", "choices": None, "precision": None, "answer": "12"}
MC = {"question_type": "multi_choice", "answer_type": "text", "choices": ["3", "5", "red"], "precision": None,
      "answer": "5"}
LIST = {"question_type": "free_form", "answer_type": "list", "choices": None, "precision": None,
        "answer": "[2014, 2016]"}

EXTRACT = [
    # response, problem, quick, expected, rule (MV-EX extract_answer)
    ("", INT, False, "", "empty response -> ''"),
    ("5", MC, False, "5", "a multi_choice response that is exactly a choice"),
    (" 5", MC, False, mv.NEEDS_JUDGE, "...exactly: ' 5' is not a choice, so the model would be asked"),
    (" 12 ", INT, False, "12", "integer: int() of the response (it takes surrounding spaces)"),
    ("12.0", INT, False, mv.NEEDS_JUDGE, "integer: int('12.0') fails -> the model"),
    ("1.25", FLOAT1, False, "1.25", "float: str(float(response)), not yet rounded"),
    ("1e3", FLOAT1, False, "1000.0", "float: float() takes scientific notation"),
    ('The answer is "7".', INT, True, "7", "--quick_extract: the quoted answer"),
    ('The answer is "7".', INT, False, mv.NEEDS_JUDGE, "quick extraction is off by default"),
    ("I think 12", INT, False, mv.NEEDS_JUDGE, "anything else: the model (no heuristic here)"),
]


@pytest.mark.parametrize("response, problem, quick, expected, rule", EXTRACT, ids=[r[4] for r in EXTRACT])
def test_mathvista_extract(response, problem, quick, expected, rule):
    assert mv.extract_answer(response, problem, quick) == expected if isinstance(expected, str) else \
        mv.extract_answer(response, problem, quick) is expected


NORMALIZE = [
    # extraction, problem, expected normalised prediction, rule (MV-CS normalize_extracted_answer)
    ("B", MC, "5", "multi_choice: a letter picks the choice"),
    ("(c) red", MC, "red", "multi_choice: '(x)' anywhere -> its letter upper-cased"),
    (" b ", MC, "3", "multi_choice: stripped, but a lower-case letter is no letter: nearest choice ('b'->'3' 1 edit)"),
    ("rod", MC, "red", "multi_choice: the nearest choice by edit distance"),
    ("", MC, "3", "multi_choice: empty -> the nearest choice, the first on ties (all at distance 1)"),
    ("12.7", INT, "12", "integer: str(int(float(x))) truncates"),
    ("twelve", INT, None, "integer: not a number -> None"),
    ("1.25", FLOAT1, "1.2", "float: round(x, precision) (Python rounds half to even on the binary value)"),
    ("1.26", FLOAT1, "1.3", "float: rounded to 1 place"),
    ("2", FLOAT1, "2.0", "float: str(round(2.0, 1)) is '2.0'"),
    ("[2014, 2016]", LIST, "[2014, 2016]", "list: str(x)"),
]


@pytest.mark.parametrize("extraction, problem, expected, rule", NORMALIZE, ids=[r[3] for r in NORMALIZE])
def test_mathvista_normalize(extraction, problem, expected, rule):
    assert mv.normalize_extracted_answer(extraction, problem["choices"], problem["question_type"],
                                         problem["answer_type"], problem["precision"]) == expected


def test_mathvista_correct_and_scores():
    assert mv.mathvista_correct("1.2", FLOAT1) is True  # str(float('1.2')) -> round -> '1.2' == '1.2'
    assert mv.mathvista_correct("I think 12", INT) is mv.NEEDS_JUDGE
    assert mv.mathvista_correct("I think 12", INT, extraction="12") is True  # a judge's extraction finishes it
    assert mv.mathvista_correct("", INT) is False  # '' -> int(float('')) fails -> None != '12'
    assert mv.mathvista_correct("[2014,2016]", LIST, extraction="[2014,2016]") is False  # safe_equal: plain ==
    with pytest.raises(ValueError, match="no normalisation for a free_form question of answer_type 'text'"):
        mv.normalize_extracted_answer("x", None, "free_form", "text", None)
    assert mv.normalize_extracted_answer("", MC["choices"], "multi_choice", "text", None, True) is None
    scores = mv.mathvista_scores({
        "1": {"true_false": True, "question_type": "free_form", "answer_type": "float", "skills": ["a", "b"]},
        "2": {"true_false": False, "question_type": "free_form", "answer_type": "integer", "skills": ["b"]},
        "3": {"true_false": True, "question_type": "multi_choice", "answer_type": "text", "skills": []},
    })
    assert scores["average"] == {"accuracy": pytest.approx(2 / 3), "correct": 2, "total": 3}
    assert scores["question_type"] == {"multi_choice": {"accuracy": 1.0, "correct": 1, "total": 1},
                                       "free_form": {"accuracy": 0.5, "correct": 1, "total": 2}}
    assert list(scores["question_type"]) == ["multi_choice", "free_form"]  # sorted by accuracy, highest first
    assert scores["skills"]["b"] == {"accuracy": 0.5, "correct": 1, "total": 2}
    assert "language" not in scores  # keys the results do not carry are left out
