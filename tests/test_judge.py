"""The model judge (`mm1_jax.eval.judge`) and the judged benchmarks: LLaVA-Bench (In-the-Wild), MM-Vet, Ferret-Bench.

Readers on hand-written records with the releases' field names; the official parsing and summary rules on
hand-computed cases, each naming where it was read:
  LLAVA-REVIEW  haotian-liu/LLaVA llava/eval/eval_gpt_review_bench.py parse_score and its review content,
                llava/eval/table/rule.json, llava/eval/summarize_gpt_review.py (c121f043)
  MMVET-EVAL    yuweihao/MM-Vet mm-vet_evaluator.py (acde843e): the prompt, the float rule, the retry loop, the tables
  FERRET-REVIEW apple/ml-ferret ferret/eval/eval_gpt_review_3newclass.py postprocess_answer, rule.json,
                summarize_gpt_review.py (3c9e5c93)
The HTTP backend against a loopback server (http.server in a thread) with scripted replies: malformed bodies, HTTP
errors, a timeout, a judge that stays down; the API key is checked to leak nowhere.
"""
import json
import logging
import math
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ml_collections
import pytest

from mm1_jax.eval import judge as judge_lib
from mm1_jax.eval.judge import (JUDGE_DEFAULTS, NOT_SCORED, JudgeError, LocalJudge, OpenAIJudge, Reply, build_judge,
                                chatml)
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.readers.judged import ferret_regions, read_ferret_bench, read_llava_w, read_mmvet
from mm1_jax.eval.scorers import judged

KEY_ENV = "MM1_JUDGE_TEST_KEY"
KEY = "sk-test-LEAKCHECK-7f3a9c01d2e4"  # distinctive: searched for in everything the judge leaves behind


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG")
    return str(path)


def jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


class Scripted(LocalJudge):
    """A local judge whose generate function is a stand-in: replies from `reply(messages)`; every call recorded."""

    def __init__(self, reply, **kwargs):
        self.calls = []

        def generate(messages, temperature, max_tokens):
            self.calls.append((messages, temperature, max_tokens))
            return reply(messages)

        super().__init__(generate, model="scripted-judge", **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------------------------
def test_read_llava_w(tmp_path):
    root = tmp_path / "llava-bench-in-the-wild"
    jsonl(root / "questions.jsonl", [
        {"image": "001.jpg", "text": "What is the name of this famous sight in the photo?", "category": "conv",
         "question_id": 0},
        {"image": "001.jpg", "text": "Describe this photo in detail.", "category": "detail", "question_id": 1},
        {"image": "001.jpg", "text": "Why?", "category": "reasoning", "question_id": 2},  # no such rule
        {"image": "002.jpg", "text": "What fruit?", "category": "conv", "question_id": 3},  # no context
        {"image": "001.jpg", "text": "Where?", "category": "complex", "question_id": 4},  # no reference
    ])
    jsonl(root / "context.jsonl", [{"id": "001", "image": "001.jpg",
                                    "caption": "An aerial view of Diamond Head in the Hawaiian Islands."}])
    jsonl(root / "answers_gpt4.jsonl", [
        {"question_id": q, "prompt": "...", "answer_id": f"a{q}", "model_id": "gpt-4-0314", "metadata": {},
         "text": f"reference {q}"} for q in (0, 1, 2, 3)])
    touch(root / "images" / "001.jpg")
    items, skipped = read_llava_w("llava_w", annotations=str(root))
    assert [it.id for it in items] == ["0", "1"]
    first = items[0]
    assert first.question == "What is the name of this famous sight in the photo?"
    assert first.images == [str(root / "images" / "001.jpg")] and first.answers == ["reference 0"]
    assert first.meta == {"category": "conv", "caption": "An aerial view of Diamond Head in the Hawaiian Islands.",
                          "reference": "reference 0", "question_id": 0, "image": "001.jpg"}
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "category 'reasoning'" in reasons["2"] and "no caption for image '002.jpg'" in reasons["3"]
    assert "no reference answer for question_id 4" in reasons["4"]
    with pytest.raises(ValueError, match="'llava_w'.*not an existing folder"):
        read_llava_w("llava_w", annotations=str(tmp_path / "absent"))
    (root / "answers_gpt4.jsonl").unlink()
    with pytest.raises(ValueError, match="'llava_w'.*answers_gpt4.jsonl"):
        read_llava_w("llava_w", annotations=str(root))


def test_read_mmvet(tmp_path):
    root = tmp_path / "mm-vet"
    (root).mkdir()
    (root / "mm-vet.json").write_text(json.dumps({
        "v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"],
                 "question": "What is x in the equation?", "answer": "-1<AND>-5"},
        "v1_1": {"imagename": "v1_1.png", "capability": [], "question": "Q?", "answer": "A"},
        "v1_2": {"imagename": "v1_2.png", "capability": ["rec"], "question": "Q?"},
    }), encoding="utf-8")
    touch(root / "images" / "v1_0.png")
    for annotations in (str(root), str(root / "mm-vet.json")):
        items, skipped = read_mmvet("mmvet", annotations=annotations)
        assert len(items) == 1
        it = items[0]
        assert (it.id, it.question, it.answers) == ("v1_0", "What is x in the equation?", ["-1<AND>-5"])
        assert it.images == [str(root / "images" / "v1_0.png")]
        assert it.meta == {"capability": ["ocr", "math"], "answer": "-1<AND>-5", "image": "v1_0.png"}
        reasons = {s["id"]: s["reason"] for s in skipped}
        assert "'capability' is empty" in reasons["v1_1"] and "lacks the field 'answer'" in reasons["v1_2"]
    (root / "mm-vet.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="'mmvet'.*mm-vet.json"):
        read_mmvet("mmvet", annotations=str(root))


def test_read_ferret_bench(tmp_path):
    root = tmp_path / "ferret_gpt4_data"
    context = ("Objects:\nObject 0 : sign at [0.621, 0.082, 0.772, 0.132].\n\nRelationships:\n\n"
               "Region Description:\n\nGlobal Caption:\nA red traffic light with a sad face drawn over it.")
    record = {"question_id": 0, "image": "000000069138.jpg", "category": "refer_desc",
              "text": "What is the interaction between the object [0.621, 0.082, 0.772, 0.132] and its surroundings?"}
    bad = {**record, "question_id": 1, "text": "What is [0.1, 2]?"}
    jsonl(root / "refer_caption" / "question.jsonl", [record, bad])
    jsonl(root / "refer_caption" / "context.jsonl", [{**record, "text": context}])
    jsonl(root / "refer_caption" / "answer.jsonl", [{**record, "text": "The object is a sign."},
                                                    {**record, "question_id": 1, "text": "x"}])
    ground = {"question_id": 0, "image": "000000125472.jpg", "category": "ground_conv",
              "text": "What is the man in the image doing and tell me the coordinates of the man?"}
    jsonl(root / "ground_conv" / "question.jsonl", [ground])
    jsonl(root / "ground_conv" / "context.jsonl", [{**ground, "text": "Objects:\n..."}])
    jsonl(root / "ground_conv" / "answer.jsonl", [{**ground, "text": "A man [0.201, 0.002, 0.940, 0.758] skates."}])
    coco = tmp_path / "val2017"
    touch(coco / "000000069138.jpg")
    touch(coco / "000000125472.jpg")
    items, skipped = read_ferret_bench("ferret_bench", annotations=str(root), images=str(coco))
    assert [it.id for it in items] == ["refer_desc/0", "ground_conv/0"]
    it = items[0]
    assert it.question == "What is the interaction between the object [621, 82, 772, 132] and its surroundings?"
    assert it.images == [str(coco / "000000069138.jpg")] and it.answers == ["The object is a sign."]
    assert it.meta["release_question"] == record["text"] and it.meta["regions"] == [[0.621, 0.082, 0.772, 0.132]]
    assert it.meta["context"] == context and it.meta["category"] == "refer_desc"
    reasons = {s["id"]: s["reason"] for s in skipped}
    assert "has 2 numbers, not 4" in reasons["refer_desc/1"]
    assert "refer_reason" in reasons and "absent" in reasons["refer_reason"]
    with pytest.raises(ValueError, match="categories='refer'"):
        read_ferret_bench("ferret_bench", annotations=str(root), images=str(coco), categories="refer")
    assert ferret_regions("box [0.5, 0.25, 1, 0.999]") == ("box [500, 250, 1000, 999]", [[0.5, 0.25, 1.0, 0.999]])


# --------------------------------------------------------------------------------------------------------------------
# Official parsing rules (hand-computed from the official code)
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("review, expected", [
    ("8 9\nAssistant 1 is ...", ([8.0, 9.0], True)),  # LLAVA-REVIEW: the first line, two numbers
    ("7.5,10", ([7.5, 10.0], True)),  # "," -> " "
    ("8, 9", ([-1, -1], False)),  # "8  9" splits into three pieces on single spaces
    ("8 9 \nwhy", ([-1, -1], False)),  # a trailing space: three pieces
    ("Scores: 8 9", ([-1, -1], False)),
    ("9", ([-1, -1], False)),
    ("8\t9", ([-1, -1], False)),  # a tab is not a separator: one piece, which float() refuses
    ("8 9\r\nwhy", ([8.0, 9.0], True)),  # float() strips the "\r"
    ("-1 -1", ([-1.0, -1.0], True)),  # a judge may say -1 -1 itself: parsed
    ("", ([-1, -1], False)),
])
def test_parse_score(review, expected):
    assert judged.parse_score(review) == expected


@pytest.mark.parametrize("content, expected", [
    ("0.5", 0.5), ("0.8 because", 0.8), ("1.0\n", 1.0), ("1", 1.0), ("0", 0.0),  # MMVET-EVAL: split(" ")[0].strip()
    ("1.1", None), ("-0.1", None),  # outside [0, 1]
    (" 0.5", None),  # a leading space: the first piece is ""
    ("Correctness: 0.4", None), ("", None), (None, None),
])
def test_mmvet_parse(content, expected):
    assert judged.mmvet_parse(content) == expected


def test_mmvet_parse_nan_passes_the_range_check():
    assert math.isnan(judged.mmvet_parse("nan"))  # nan > 1.0 and nan < 0.0 are both False in the official check


def test_llava_context_and_review_content():
    assert judged.llava_context("ab c") == "a\nb\n \nc"  # '\n'.join of the released string caption
    assert judged.llava_context(["first.", "second."]) == "first.\nsecond."
    item = Item("0", [], "What is it?", meta={"category": "detail", "caption": "Hi.", "reference": "REF"})
    system, user = judged.llava_w_messages(item, "ANS")
    assert system == {"role": "system", "content": judged.JUDGE_SYSTEM}
    assert user["content"] == ("[Context]\nH\ni\n.\n\n[Question]\nWhat is it?\n\n[Assistant 1]\nREF\n\n"
                               "[End of Assistant 1]\n\n[Assistant 2]\nANS\n\n[End of Assistant 2]\n\n[System]\n"
                               + judged.LLAVA_RULES["detail"] + "\n\n")
    assert judged.LLAVA_RULES["detail"].startswith("We would like to request your feedback on the performance of two")


def test_mmvet_question():
    text = judged.mmvet_question("What is x?", "-1<AND>-5<OR>5", "x = -1")
    assert text == judged.MMVET_PROMPT + "\nWhat is x? | -1 <AND> -5 <OR> 5 | x = -1 | "
    assert judged.mmvet_question("q", "a", "p", retry=True).endswith(
        "q | a | p | \nPredict the correctness of the answer (digit): ")
    assert judged.MMVET_PROMPT.endswith("physical characteristics. | 1.0\n")


def test_mmvet_retry_schedule():
    """MMVET-EVAL: an unreadable reply is asked again with the retry suffix at the current temperature, which then
    rises by 0.5; after the 6th request the score is 0.0."""
    never = Scripted(lambda m: "Correctness")
    score, replies, parsed, _ = judged.mmvet_grade(never, "q", "a", "p")
    assert (score, parsed, len(replies)) == (0.0, False, 6)
    assert [t for _, t, _ in never.calls] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert all(n == 3 for _, _, n in never.calls)
    assert not never.calls[0][0][0]["content"].endswith(judged.MMVET_RETRY)
    assert all(m[0]["content"].endswith(judged.MMVET_RETRY) for m, _, _ in never.calls[1:])
    answers = iter(["x", "y", "0.7"])
    late = Scripted(lambda m: next(answers))
    assert judged.mmvet_grade(late, "q", "a", "p")[:3] == (0.7, ["x", "y", "0.7"], True)
    assert [t for _, t, _ in late.calls] == [0.0, 0.0, 0.5]


def test_ferret_postprocess():
    """FERRET-REVIEW postprocess_answer on the model's answer."""
    pp = judged.ferret_postprocess
    assert pp("A sign [0.1, 0.2, 0.3, 0.4] on a pole.[5, 6, 7, 8]", "refer_desc") == \
        ("A sign on a pole.[5, 6, 7, 8]", True)  # only " [...]" (after a space) is deleted
    assert pp("The man [120, 30, 560, 990] skates.", "ground_conv") == ("The man [0.120, 0.030, 0.560, 0.990] skates.",
                                                                       True)
    assert pp("a [1, 2, 3, 4, 5] b", "ground_conv") == ("a  b", True)  # over 4 numbers: deleted, as the code does
    assert pp("a [1, 2, 3] b", "ground_conv") == ("a  b", False)  # the official IndexError
    assert pp("a [x, y, z, w] b", "ground_conv") == ("a  b", False)  # the official ValueError


def test_review_summary_and_mmvet_tables():
    # LLAVA-REVIEW summarize: means (8 + 6 - 1) / 3 = 4.333, (9 + 3 - 1) / 3 = 3.667; 100 * 3.667 / 4.333 = 84.63
    assert judged.review_summary([[8, 9], [6, 3], [-1, -1]]) == {"reference": 4.333, "model": 3.667,
                                                                  "relative": 84.6, "count": 3}
    # MMVET-EVAL export_result: rec (1 + 0.5 + 0.4) / 3 = 63.3, ocr 0.5 / 2 = 25.0, math 0.0, total 1.9 / 4 = 47.5
    tables = judged.mmvet_scores([1.0, 0.5, 0.0, 0.4], [["rec"], ["rec", "ocr"], ["ocr", "math"], ["rec"]])
    assert tables["capabilities"] == {"rec": 63.3, "ocr": 25.0, "math": 0.0, "total": 47.5}
    assert list(tables["capabilities"]) == ["rec", "ocr", "math", "total"]  # by number of questions
    assert tables["integrations"] == {"rec": 70.0, "ocr_rec": 50.0, "math_ocr": 0.0, "total": 47.5}


# --------------------------------------------------------------------------------------------------------------------
# Aggregates on a scripted judge
# --------------------------------------------------------------------------------------------------------------------
def llava_items():
    meta = {"caption": "A dog.", "reference": "REF"}
    return [Item(str(i), [], f"question {i}", meta={**meta, "category": c})
            for i, c in enumerate(["conv", "conv", "detail", "complex"])]


def test_llava_w_aggregate():
    replies = {"answer 0": "8 6\nok", "answer 1": "10 10", "answer 2": "8, 4\nbad", "answer 3": "5 5"}
    judge = Scripted(lambda m: next(v for k, v in replies.items() if k in m[1]["content"]))
    scores, rows, details = judged.llava_w_aggregate(llava_items(), [f"answer {i}" for i in range(4)], "official",
                                                     judge)
    # all: reference (8 + 10 - 1 + 5) / 4 = 5.5, model (6 + 10 - 1 + 5) / 4 = 5.0 -> 90.9 (the [-1, -1] kept)
    assert scores == pytest.approx({"gpt_score": 0.909, "unparsed": 0.25})
    assert details["table"]["all"] == {"reference": 5.5, "model": 5.0, "relative": 90.9, "count": 4}
    assert details["table"]["conv"]["relative"] == 88.9  # 8 / 9
    assert details["table"]["detail"]["relative"] == 100.0  # -1 / -1
    assert details["excluding_unparsed"]["all"] == {"reference": 7.667, "model": 7.0, "relative": 91.3, "count": 3}
    assert details["unparsed"] == [{"id": "2", "reply": "8, 4\nbad"}]
    assert details["replies"][0] == {"id": "0", "reply": "8 6\nok", "tuple": [8.0, 6.0]}
    assert details["judge"] == {"backend": "local", "model": "scripted-judge"}
    assert details["served_models"] == ["scripted-judge"]
    assert details["prompt_version"] == judged.LLAVA_PROMPT_VERSION and details["prompt_version"].startswith(
        "llava_bench-")
    assert rows[2] == {"reference_score": -1, "score": -1, "unparsed": True}
    assert [(t, n) for _, t, n in judge.calls] == [(0.2, 1024)] * 4
    assert judge.calls[0][0][1]["content"].startswith("[Context]\nA\n \nd\no\ng\n.\n\n[Question]\nquestion 0\n\n")


def test_mmvet_aggregate():
    items = [Item("v1_0", [], "What is x?", meta={"answer": "-1<AND>-5", "capability": ["math", "ocr"]}),
             Item("v1_1", [], "Who?", meta={"answer": "Elon", "capability": ["rec"]})]
    judge = Scripted(lambda m: "0.5" if "| x is minus one |" in m[0]["content"] else "I think")
    scores, rows, details = judged.mmvet_aggregate(items, ["x is minus one", "nobody"], "lmms_eval", judge)
    assert scores == {"gpt_score": 0.25, "unparsed": 0.5}  # (0.5 + 0.0) / 2
    assert details["capabilities"] == {"math": 50.0, "ocr": 50.0, "rec": 0.0, "total": 25.0}
    assert rows == [{"score": 0.5, "requests": 1, "unparsed": False}, {"score": 0.0, "requests": 6, "unparsed": True}]
    assert details["unparsed"] == [{"id": "v1_1", "replies": ["I think"] * 6}]
    assert details["prompt_version"] == judged.MMVET_PROMPT_VERSION and "lmms_eval" in details["convention_note"]


def test_ferret_bench_aggregate():
    items = [Item(f"{c}/0", [], "q", meta={"category": c, "context": "CTX", "reference": "REF",
                                           "release_question": f"{c} [0.1, 0.2, 0.3, 0.4]?"})
             for c in ("refer_desc", "refer_reason", "ground_conv")]
    by_category = {"refer_desc": "8 6", "refer_reason": "5 5", "ground_conv": "10 4"}
    judge = Scripted(lambda m: next(v for k, v in by_category.items() if k in m[1]["content"].split("[Question]")[1]
                                    .split("\n")[1]))
    predictions = ["It is a sign [100, 200, 300, 400].", "Because.", "A man [120, 30, 560, 990] and [1, 2]."]
    scores, _, details = judged.ferret_bench_aggregate(items, predictions, "official", judge)
    assert scores == pytest.approx({"gpt_score": (75.0 + 100.0 + 40.0) / 300, "refer_desc": 0.75,
                                    "refer_reason": 1.0, "ground_conv": 0.4, "unparsed": 0.0})
    contents = [m[1]["content"] for m, _, _ in judge.calls]
    assert contents[0].startswith("[Context]\\CTX\n\n[Question]\nrefer_desc [0.1, 0.2, 0.3, 0.4]?\n\n")
    assert "[Assistant 2]\nIt is a sign.\n\n" in contents[0]
    assert "[Assistant 2]\nA man [0.120, 0.030, 0.560, 0.990] and .\n\n" in contents[2]
    assert contents[2].endswith(judged.FERRET_RULES["ground_conv"] + "\n\n")
    assert details["postprocess_failed"] == ["ground_conv/0"]
    assert details["prompt_version"].startswith("ferret_bench-")


def test_no_judge_is_not_scored():
    items = llava_items()
    for aggregate in judged.JUDGED_AGGREGATES.values():
        assert aggregate(items, ["a"] * 4, "official", None) == ({}, [{}] * 4, {"not_scored": NOT_SCORED})
    assert NOT_SCORED == "no judge"


# --------------------------------------------------------------------------------------------------------------------
# The local backend
# --------------------------------------------------------------------------------------------------------------------
def test_local_judge_and_chatml():
    assert chatml([{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert chatml([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]).startswith(
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU")
    judge = Scripted(lambda m: "7 8", max_tokens=64, temperature=0.0)
    assert judge.ask([{"role": "user", "content": "x"}], temperature=0.2, max_tokens=1024) == Reply("7 8",
                                                                                                    "scripted-judge")
    assert judge.calls[-1][1:] == (0.0, 64)  # the config's overrides
    assert judge.describe() == {"backend": "local", "model": "scripted-judge", "max_tokens_override": 64,
                                "temperature_override": 0.0}

    def broken(messages, temperature, max_tokens):
        raise RuntimeError("out of memory")

    with pytest.raises(JudgeError, match="local judge 'mine' failed: RuntimeError: out of memory"):
        LocalJudge(broken, model="mine").ask([], temperature=0, max_tokens=1)


def test_text_decoder_adapter_drops_the_image_arguments():
    class Decoder:
        def apply(self, variables, tokens, **kwargs):
            return variables, tokens, kwargs

    adapter = judge_lib._TextDecoder(Decoder())  # pylint: disable=protected-access
    assert adapter.apply({"params": 1}, [[5]], images=None, image_token_index=[[-1]], positions=[[0]], decode=True) \
        == ({"params": 1}, [[5]], {"positions": [[0]], "decode": True})


# --------------------------------------------------------------------------------------------------------------------
# The OpenAI-compatible backend on a loopback server
# --------------------------------------------------------------------------------------------------------------------
class Server:
    """A chat-completions endpoint on 127.0.0.1 answering from a script: each entry is ("ok", content),
    ("status", code, body), ("raw", bytes) or ("sleep", seconds, content); the last entry repeats."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = ("ok", step[2])
                if step[0] == "ok":
                    self.send(200, json.dumps({"id": "x", "model": "gpt-4-0613-served", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": step[1]}}]}).encode())
                elif step[0] == "status":
                    self.send(step[1], step[2].encode())
                else:
                    self.send(200, step[1])

            def send(self, code, payload):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def start(*script):
        made.append(Server(script))
        return made[-1]

    yield start
    for s in made:
        s.close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def client(url, **kwargs):
    slept = []
    kwargs.setdefault("attempts", 3)
    judge = OpenAIJudge(url, "gpt-4-0613", KEY_ENV, backoff_s=0.01, timeout_s=2.0, sleep=slept.append, **kwargs)
    return judge, slept


def test_openai_judge_request_and_reply(server, key):
    srv = server(("ok", "8 9\nBoth fine."))
    judge, slept = client(srv.url)
    reply = judge.ask([{"role": "user", "content": "rate"}], temperature=0.2, max_tokens=1024)
    assert reply == Reply("8 9\nBoth fine.", "gpt-4-0613-served") and slept == []
    (request,) = srv.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {key}"
    assert request["body"] == {"model": "gpt-4-0613", "messages": [{"role": "user", "content": "rate"}],
                               "temperature": 0.2, "max_tokens": 1024}


def test_openai_judge_retries_with_backoff(server, key):
    srv = server(("status", 503, '{"error": {"message": "overloaded"}}'), ("raw", b"<html>oops</html>"),
                 ("raw", b'{"choices": []}'), ("ok", "0.5"))
    judge, slept = client(srv.url, attempts=4)
    assert judge.ask([], temperature=0, max_tokens=3).text == "0.5"
    assert len(srv.requests) == 4 and slept == [0.01, 0.02, 0.04]  # backoff_s * 2**k


def test_openai_judge_timeout_is_retried(server, key):
    srv = server(("sleep", 0.6, "late"), ("ok", "on time"))
    judge = OpenAIJudge(srv.url, "m", KEY_ENV, attempts=2, backoff_s=0.0, timeout_s=0.15)
    assert judge.ask([], temperature=0, max_tokens=3).text == "on time"
    assert len(srv.requests) == 2


def test_openai_judge_down_stops_the_task(server, key, caplog):
    srv = server(("status", 500, "internal error"))
    judge, slept = client(srv.url)
    with pytest.raises(JudgeError) as raised:
        judged.llava_w_aggregate(llava_items(), ["a"] * 4, "official", judge)
    message = str(raised.value)
    assert message.startswith("eval task 'llava_w': judge 'gpt-4-0613' at ")
    assert f"{srv.url}/chat/completions gave no reply after 3 attempts; the last error: HTTP 500: internal error" \
        in message
    assert len(srv.requests) == 3 and slept == [0.01, 0.02]
    assert "attempt 1 of 3 failed (HTTP 500: internal error); retrying" in caplog.text
    # the caller goes on with the next task
    other = Scripted(lambda m: "1.0")
    items = [Item("v1_0", [], "q", meta={"answer": "a", "capability": ["rec"]})]
    assert judged.mmvet_aggregate(items, ["a"], "official", other)[0]["gpt_score"] == 1.0


def test_openai_judge_fails_fast(server, key):
    srv = server(("status", 401, '{"error": {"message": "Incorrect API key provided"}}'))
    judge, slept = client(srv.url)
    with pytest.raises(JudgeError, match=r"refused the request \(HTTP 401: Incorrect API key provided\)"):
        judge.ask([], temperature=0, max_tokens=3)
    assert len(srv.requests) == 1 and slept == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    judge, slept = client(f"http://127.0.0.1:{port}/v1", attempts=2)
    with pytest.raises(JudgeError, match="gave no reply after 2 attempts; the last error: cannot connect"):
        judge.ask([], temperature=0, max_tokens=3)


def test_the_key_never_leaks(server, key, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    seen = []

    class Echo(BaseHTTPRequestHandler):  # the worst server: it echoes the Authorization header everywhere
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            auth = self.headers["Authorization"]
            seen.append(auth)
            mode = len(seen)
            if mode in (1, 2):
                body = json.dumps({"model": auth, "choices": [{"message": {"content": f"8 9 {auth}"}}]})
                code = 200
            elif mode in (3, 4):
                body, code = f"<html>bad gateway for {auth}</html>", 502
            elif mode == 5:
                body, code = "{" + auth, 200
            else:
                body, code = json.dumps({"error": {"message": f"bad key {auth}"}}), 401
            payload = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    texts = []
    try:
        judge, _ = client(url, attempts=2)
        texts += [repr(judge), str(judge.describe()), str(vars(judge))]
        scores, rows, details = judged.llava_w_aggregate(llava_items()[:1], ["a"], "official", judge)  # echoed reply
        texts += [json.dumps(details), json.dumps(rows), json.dumps(scores)]
        judge.ask([], temperature=0, max_tokens=3)  # request 2
        for _ in range(2):  # 502 twice (down), then a malformed body and a 401
            try:
                judged.mmvet_aggregate([Item("v", [], "q", meta={"answer": "a", "capability": ["rec"]})], ["p"],
                                       "official", judge)
            except JudgeError as e:
                texts += [str(e), repr(e), str(e.__cause__), str(e.__context__)]
        monkeypatch.delenv(KEY_ENV)
        try:
            judge.ask([], temperature=0, max_tokens=3)
        except JudgeError as e:
            texts.append(str(e))
        with pytest.raises(ValueError) as missing:
            build_judge({"backend": "openai", "url": url, "model": "m", "api_key_env": KEY_ENV})
        texts.append(str(missing.value))
        assert KEY_ENV in str(missing.value)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen[:6] == [f"Bearer {KEY}"] * 6  # the key was sent, and echoed back every way
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert "[key]" in json.dumps(details)  # the echo was masked, not dropped
    for text in texts:
        assert KEY not in text


# --------------------------------------------------------------------------------------------------------------------
# The config
# --------------------------------------------------------------------------------------------------------------------
def test_build_judge(key, monkeypatch, tmp_path):
    assert build_judge(JUDGE_DEFAULTS) is None and build_judge({}) is None and build_judge(None) is None
    cfg = JUDGE_DEFAULTS.copy_and_resolve_references()
    assert isinstance(cfg, ml_collections.ConfigDict) and cfg.api_key_env == "OPENAI_API_KEY"
    cfg.update(backend="openai", url="http://127.0.0.1:9/v1/", model="gpt-4-0613", api_key_env=KEY_ENV, attempts=2,
               backoff_s=0.5, timeout_s=30.0, max_tokens=0)
    judge = build_judge(cfg)
    assert isinstance(judge, OpenAIJudge) and judge.endpoint == "http://127.0.0.1:9/v1/chat/completions"
    assert (judge.attempts, judge.backoff_s, judge.timeout_s) == (2, 0.5, 30.0)
    assert repr(judge) == ("OpenAIJudge(url='http://127.0.0.1:9/v1', model='gpt-4-0613', "
                           f"api_key_env='{KEY_ENV}', attempts=2, backoff_s=0.5, timeout_s=30.0)")
    assert build_judge({"backend": "openai", "url": "http://h/v1", "model": "m", "api_key_env": ""}).api_key_env == ""
    base = {"backend": "openai", "url": "http://h/v1", "model": "m", "api_key_env": KEY_ENV}
    for change, message in [
        ({"backend": "gpt"}, "eval.judge.backend='gpt' is not one of '', 'openai', 'local'."),
        ({"url": "h/v1"}, "eval.judge.url='h/v1' is not an http:// or https:// URL"),
        ({"model": ""}, "eval.judge.model is unset"),
        ({"attempts": 0}, "eval.judge.attempts=0 must be at least 1."),
        ({"attempts": 1.5}, "eval.judge.attempts=1.5 is not an integer."),
        ({"timeout_s": 0}, "eval.judge.timeout_s=0 must be above 0."),
        ({"backoff_s": "soon"}, "eval.judge.backoff_s='soon' is not a number."),
        ({"temperature": "hot"}, "eval.judge.temperature='hot' is not a number"),
        ({"max_tokens": -1}, "eval.judge.max_tokens=-1 must be at least 0."),
        ({"api_key_env": "MM1_JUDGE_UNSET_VARIABLE"}, ("eval.judge.api_key_env='MM1_JUDGE_UNSET_VARIABLE' names an "
                                                       "environment variable that is not set")),
        ({"colour": "red"}, "eval.judge has unknown field colour"),
        ({"backend": "local"}, "eval.judge.backend='local' needs eval.judge.checkpoint"),
        ({"backend": "local", "checkpoint": str(tmp_path / "none")}, "is not an existing folder"),
        ({"backend": "local", "checkpoint": str(tmp_path)}, "no tokenizer file"),
    ]:
        with pytest.raises(ValueError) as raised:
            build_judge({**base, **change})
        assert message in str(raised.value)
        assert KEY not in str(raised.value)
    monkeypatch.delenv("MM1_JUDGE_UNSET_VARIABLE", raising=False)
    assert os.environ[KEY_ENV] == KEY
