"""The judge step of the benchmarks whose official scorers hand unreadable answers to a model: MathVista's answer
extraction (lupantech/MathVista evaluation/extract_answer.py), BLINK's GPT-3.5 matcher (zeyofu/BLINK_Benchmark
eval/multiple_choice.py) and VLMEvalKit's extract_answer_from_item (MMBench, SEED-Bench, BLINK, MuirBench under its
convention). A scripted local judge stands in for the model; every expected value is worked out by hand from the
official rules."""
from __future__ import annotations

import random

import pytest

from mm1_jax.eval.judge import JudgeError, LocalJudge
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers import general, items, mathvista, mmbench
from mm1_jax.eval.scorers import multi_image as mi


class Scripted(LocalJudge):
    """A local judge replying `reply(prompt text)` (or the next of a list of replies); every call recorded."""

    def __init__(self, reply, **kwargs):
        self.calls = []
        queue = list(reply) if isinstance(reply, (list, tuple)) else None

        def generate(messages, temperature, max_tokens):
            self.calls.append((messages, temperature, max_tokens))
            return queue.pop(0) if queue is not None else reply(messages[-1]["content"])

        super().__init__(generate, model="scripted-judge", **kwargs)

    @property
    def prompts(self):
        return [m[-1]["content"] for m, _, _ in self.calls]


def broken():
    def generate(messages, temperature, max_tokens):
        raise ConnectionError("the judge is down")
    return LocalJudge(generate, model="down")


# ====================================================================================================== MathVista
INT_PROBLEM = {"question_type": "free_form", "answer_type": "integer", "choices": None, "precision": None,
               "answer": "12", "language": "english"}
MC_PROBLEM = {"question_type": "multi_choice", "answer_type": "text", "choices": ["3/11", "8/11", "6/11", "3/5"],
              "precision": None, "answer": "8/11", "language": "english"}
INT_QUERY = ("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, "
             "3, at the end.\nQuestion: How many apples are there?")

# Hand-written from evaluation/prompts/ext_ans.py and create_test_prompt: demo_prompt.strip(), a blank line, the
# query, a blank line, the response, a blank line, "Extracted answer: ".
MATHVISTA_EXPECTED = (
    "Please read the following example. Then extract the answer from the model response and type it at the end of "
    "the prompt.\n\n"
    "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the "
    "end.\nQuestion: Which number is missing?\n\nModel response: The number missing in the sequence is 14.\n\n"
    "Extracted answer: 14\n\n"
    "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final "
    "value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: What is the fraction of females facing the camera?\n\n"
    "Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in "
    "the group are facing the camera.\n\nExtracted answer: 0.6\n\n"
    "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the "
    "final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: How much money does Luca need to buy a sour apple "
    "candy and a butterscotch candy? (Unit: $)\n\nModel response: Luca needs $1.45 to buy a sour apple candy and a "
    "butterscotch candy.\n\nExtracted answer: 1.45\n\n"
    "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
    "[1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: Between which two years does the line  graph saw its maximum "
    "peak?\n\nModel response: The line graph saw its maximum peak between 2007 and 2008.\n\n"
    "Extracted answer: [2007, 2008]\n\n"
    "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
    "Question: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n(D) 3/5\n\n"
    "Model response: The correct answer is (B) 8/11.\n\nExtracted answer: B\n\n"
    + INT_QUERY + "\n\nThe answer is 12 apples.\n\nExtracted answer: ")


def mv_item(pid, problem, question=INT_QUERY):
    return Item(id=pid, images=[], question=question, answers=[problem["answer"]], meta=dict(problem))


def test_mathvista_judge_extracts_and_scores():
    problems = [mv_item("1", INT_PROBLEM), mv_item("2", INT_PROBLEM), mv_item("3", MC_PROBLEM, "Which fraction?"),
                mv_item("4", MC_PROBLEM, "Which fraction?"), mv_item("5", INT_PROBLEM)]
    preds = ["The answer is 12 apples.", "12", "I'd go with the second one", "Probably 6/11 or so", "eleven"]
    replies = {"The answer is 12 apples.": "12", "I'd go with the second one": " B ", "Probably 6/11 or so": "(C)",
               "eleven": "11"}
    judge = Scripted(lambda prompt: next(v for k, v in replies.items() if f"\n\n{k}\n\n" in prompt))
    scores, rows, details = items.mathvista_aggregate(problems, preds, "official", judge)
    # 1: "12" -> int -> '12' right; 2: rule 3 (int("12")), no request; 3: "B" -> choices[1] = 8/11 right;
    # 4: "(C)" -> letter C -> 6/11 wrong; 5: "11" -> '11' != '12' wrong
    assert [r["correct"] for r in rows] == [True, True, True, False, False]
    assert scores == {"accuracy": 0.6, "needs_judge": 0.0}  # 3 of 5
    assert len(judge.calls) == 4 and all(t == 0 and n == 1024 for _, t, n in judge.calls)  # GPT_Model's defaults
    assert judge.calls[0][0] == [{"role": "user", "content": MATHVISTA_EXPECTED}]  # the exact official text
    assert [r.get("extraction") for r in rows] == ["12", None, "B", "(C)", "11"]  # the reply stripped
    assert details["replies"][1] == {"id": "3", "replies": [" B "], "extraction": "B"}
    assert details["judge"] == {"backend": "local", "model": "scripted-judge"}
    assert details["prompt_version"] == mathvista.MATHVISTA_PROMPT_VERSION and details["unsettled"] == []
    assert details["served_models"] == ["scripted-judge"] and details["table"]["average"]["correct"] == 3


def test_mathvista_empty_replies_and_overrides():
    judge = Scripted(["", "", ""], max_tokens=7, temperature=0.5)  # the config's overrides apply inside Judge
    scores, rows, details = items.mathvista_aggregate([mv_item("1", INT_PROBLEM)], ["about a dozen"], "official",
                                                      judge)
    # GPT_Model asks again while the reply is empty: 3 requests here, then the extraction is "" (invalid)
    assert len(judge.calls) == 3 and all(t == 0.5 and n == 7 for _, t, n in judge.calls)
    assert scores == {"accuracy": 0.0, "needs_judge": 1.0} and details["unsettled"] == ["1"]
    assert rows == [{"correct": False, "needs_judge": True, "extraction": ""}]
    # a whitespace reply is not empty: get_response returns it stripped (""), with no second request
    judge = Scripted(["   "])
    assert mathvista.judge_extraction(judge, "q", "r") == ("", ["   "], {"scripted-judge"})


def test_mathvista_without_judge_unchanged_and_judge_error():
    problems = [mv_item("1", INT_PROBLEM), mv_item("2", INT_PROBLEM)]
    preds = ["The answer is 12 apples.", "12"]
    expected = ({"accuracy": 0.5, "needs_judge": 0.5},
                [{"correct": False, "needs_judge": True}, {"correct": True, "needs_judge": False}])
    for result in (items.mathvista_aggregate(problems, preds, "official"),
                   items.mathvista_aggregate(problems, preds, "official", None)):
        assert result[:2] == expected and set(result[2]) == {"table", "convention"}
    with pytest.raises(JudgeError, match=r"^eval task 'mathvista': local judge 'down' failed: ConnectionError"):
        items.mathvista_aggregate(problems, preds, "official", broken())


# ========================================================================================================== BLINK
def blink_item(idx, answer, options=("the second image", "the third image"), question="Which image shares the "
               "same style as the reference image?"):
    return Item(id=idx, images=[], question="prompt", options=list(options), answer_index=ord(answer[1]) - 65,
                meta={"answer": answer, "subtask": idx[len("val_"):idx.rindex("_")], "question": question,
                      "prompt": "prompt"})


# Hand-written from eval/multiple_choice.py build_prompt with analyze_answer's arguments: the question with
# "\nSelect from the following choices" (and the template's "?"), the options one "(X) text" a line, then "(Z) Failed".
BLINK_EXPECTED = (
    "You are an AI assistant who will help me to match an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, and you need to find which option is most "
    "similar to the answer. If the answer says things like refuse to answer, I'm sorry cannot help, etc., output "
    "(Z)If the meaning of all options are significantly different from the answer, or the answer does not select any "
    "option, output (Z)Your should output one of the choices, (A),(B),(C),(D),(E) (if they are valid options), or "
    "(Z)\nExample 1: \nQuestion: Which point is closer to the camera?\nSelect from the following choices.\nOptions: "
    "(A) Point A\n(B) Point B\n(Z) Failed\nAnswer: Point B, where the child is sitting, is closer to the camera.\n"
    "Your output: (B)\nExample 2: \nQuestion: Which point is closer to the camera?\nSelect from the following "
    "choices.\nOptions: (A) Point A\n(B) Point B\n(Z) Failed\nAnswer: I'm sorry, but I can't assist with that "
    "request.\nYour output: (Z)\nExample 3: \nQuestion: Which point is corresponding to the reference point?\nSelect "
    "from the following choices.\nOptions: (A) Point A\n(B) Point B\n(Z) Failed\nAnswer:The reference point (REF) on "
    "the first image is at the tip of the pot, which is the part used to Poke if the pots were used for that action. "
    "Looking at the second image, we need to find the part of the object that would correspond to poking.\n(A) Point "
    "A is at the tip of the spoon's handle, which is not used for poking.\n(B) Point B is at the bottom of the spoon, "
    "which is not used for poking.\n(C) Point C is on the side of the pspoonot, which is not used for poking.\n(D) "
    "Point D is at the tip of the spoon, which is not used for poking.\n\nTherefore, there is no correct answer in "
    "the choices\nYour output: (Z)\nExample 4: \n"
    "Question: Which image shares the same style as the reference image?\nSelect from the following choices?\n"
    "Options: (A) the second image\n(B) the third image\n(Z) Failed\nAnswer: I'd say the last one.\nYour output: ")


def test_blink_official_judge():
    blink = [blink_item("val_Art_Style_1", "(B)"), blink_item("val_Art_Style_2", "(B)"),
             blink_item("val_Art_Style_3", "(A)"), blink_item("val_Counting_1", "(A)", ("0", "1")),
             blink_item("val_Counting_2", "(A)", ("0", "1"))]
    preds = ["I'd say the last one.", "(B)", "Neither, really.", "There are none here.", "Hmm."]
    replies = {"I'd say the last one.": "(B)", "Neither, really.": "(Z)", "There are none here.": "(A) 0",
               "Hmm.": "A"}
    judge = Scripted(lambda prompt: next(v for k, v in replies.items() if f"\nAnswer: {k}\n" in prompt))
    scores, rows, details = mi.blink_aggregate(blink, preds, "official", judge)
    # the reply IS the prediction, compared exactly: "(B)" right; "(B)" by analyze_answer, no request; "(Z)" wrong,
    # settled; "(A) 0" wrong (the saved outputs hold such replies, scored wrong), unsettled; "A" wrong, unsettled
    assert [r["answer"] for r in rows] == ["(B)", "(B)", "(Z)", "(A) 0", "A"]
    assert [r["correct"] for r in rows] == [True, True, False, False, False]
    assert [r["needs_judge"] for r in rows] == [False, False, False, True, True]
    assert scores == {"accuracy": pytest.approx((2 / 3 + 0) / 2), "needs_judge": 0.4}  # the mean of the subtasks
    assert len(judge.calls) == 4 and all(t == 0.0 and n == mi.BLINK_MATCH_MAX_TOKENS for _, t, n in judge.calls)
    assert judge.calls[0][0] == [{"role": "user", "content": BLINK_EXPECTED}]
    assert details["unsettled"] == ["val_Counting_1", "val_Counting_2"]
    assert details["replies"][0] == {"id": "val_Art_Style_1", "reply": "(B)"}
    assert details["prompt_version"] == mi.BLINK_MATCH_PROMPT_VERSION and details["judge"]["model"] == "scripted-judge"
    # no judge: today's scores; lmms-eval has no judge step
    assert mi.blink_aggregate(blink, preds, "official", None) == mi.blink_aggregate(blink, preds, "official")
    assert mi.blink_aggregate(blink, preds, "official")[0]["needs_judge"] == 0.8
    judge = Scripted(lambda prompt: "(A)")
    assert mi.blink_aggregate(blink, preds, "lmms_eval", judge) == mi.blink_aggregate(blink, preds, "lmms_eval")
    assert judge.calls == []
    with pytest.raises(JudgeError, match=r"^eval task 'blink': local judge 'down' failed"):
        mi.blink_aggregate(blink, preds, "official", broken())


# VLMEvalKit's build_prompt_blink, hand-written, its last example filled for a BLINK.tsv row
BLINK_VLMEVALKIT_TAIL = (
    "Example 4: \nQuestion: Which image shares the same style as the reference image??\nOptions: There are several "
    "options: \nA. the second image\nB. the third image\n\n(Z) Failed\nAnswer: nonsense\nYour output: ")


def test_blink_vlmevalkit_judge():
    blink = [blink_item("val_Art_Style_1", "(B)"), blink_item("val_Art_Style_2", "(A)"),
             blink_item("val_Art_Style_3", "(A)")]
    preds = ["nonsense", "B", "no idea"]
    judge = Scripted(lambda prompt: "(B)" if "Answer: nonsense\n" in prompt else "I cannot say.")
    scores, rows, details = mi.blink_aggregate(blink, preds, "vlmevalkit", judge)
    # 1: can_infer reads nothing -> the judge's "(B)" -> can_infer B, right; 2: can_infer B (no request), wrong;
    # 3: three unreadable replies -> random.Random(0).choice(["A", "B", "Z"]), unsettled
    fallback = random.Random(0).choice(["A", "B", "Z"])
    assert [r["answer"] for r in rows] == ["B", "B", fallback]
    assert [r["correct"] for r in rows] == [True, False, fallback == "A"]
    assert [r["needs_judge"] for r in rows] == [False, False, True]
    assert scores["needs_judge"] == pytest.approx(1 / 3) and details["unsettled"] == ["val_Art_Style_3"]
    assert len(judge.calls) == 1 + 3 and all(t == 0 and n == 2048 for _, t, n in judge.calls)
    assert judge.prompts[0].startswith("You are an AI assistant who will help me to match an answer with several "
                                       "options of a single-choice question. You are provided with a question, "
                                       "several options, and an answer, and you need to find which option is most "
                                       "similar to the answer. If the answer says things like refuse to answer, I'm "
                                       "sorry cannot help, etc., output Z.If the meaning")
    assert judge.prompts[0].endswith(BLINK_VLMEVALKIT_TAIL)
    assert details["prompt_version"] == mmbench.VLMEVALKIT_PROMPT_VERSION
    assert details["replies"][1] == {"id": "val_Art_Style_3", "replies": ["I cannot say."] * 3, "answer": fallback,
                                     "source": "fallback"}
    assert mi.blink_aggregate(blink, preds, "vlmevalkit", None) == mi.blink_aggregate(blink, preds, "vlmevalkit")
    with pytest.raises(JudgeError, match=r"^eval task 'blink'"):
        mi.blink_aggregate(blink, preds, "vlmevalkit", broken())


# ====================================================================================================== MuirBench
def muir_item(idx, answer, options=("<image>", "<image>", "None of the choices provided")):
    return Item(id=idx, images=[], question="Which image shows the <image> from another side?", options=list(options),
                answer_index=ord(answer) - 65, meta={"answer": answer, "task": "Visual Retrieval"})


def test_muirbench_vlmevalkit_judge():
    muir = [muir_item("1", "B"), muir_item("2", "C"), muir_item("3", "A")]
    preds = ["", "None of the choices provided", "the first one"]
    judge = Scripted(lambda prompt: "B" if "\nAnswer: \n" in prompt else "A")
    scores, rows, details = mi.muirbench_aggregate(muir, preds, "vlmevalkit", judge)
    # 1: "" -> no letter -> the judge's "B", right; 2: can_infer_text (option C's text), no request; 3: judge "A"
    assert [r["answer"] for r in rows] == ["B", "C", "A"] and scores == {"accuracy": 1.0, "needs_judge": 0.0}
    assert len(judge.calls) == 2
    # VLMEvalKit's default build_prompt (MUIRBench is no BLINK, no CJK question)
    assert judge.prompts[1].endswith("Example 3: \nQuestion: Which image shows the <image> from another side??\n"
                                     "Options: There are several options: \nA. <image>\nB. <image>\nC. None of the "
                                     "choices provided\n\nAnswer: the first one\nYour output: ")
    assert details["served_models"] == ["scripted-judge"] and details["unsettled"] == []
    assert mi.muirbench_aggregate(muir, preds, "vlmevalkit", None) == mi.muirbench_aggregate(muir, preds,
                                                                                             "vlmevalkit")
    judge = Scripted(lambda prompt: "A")  # MuirBench's own parser and lmms-eval's have no judge step
    assert mi.muirbench_aggregate(muir, preds, "official", judge) == mi.muirbench_aggregate(muir, preds, "official")
    assert judge.calls == []
    with pytest.raises(JudgeError, match=r"^eval task 'muirbench'"):
        mi.muirbench_aggregate(muir, preds, "vlmevalkit", broken())


# ======================================================================================= MMBench (VLMEvalKit's rule)
ANIMALS = ["a dog", "a cat", "a bird"]

# Hand-written from VLMEvalKit's build_prompt with build_option_str's options ("There are several options: \n" and a
# "L. text\n" line each) and the question's "?" after the template's own
MMBENCH_EXPECTED = (
    "You are an AI assistant who will help me to match an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, and you need to find which option is most "
    "similar to the answer. If the meaning of all options are significantly different from the answer, output Z. "
    "Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n"
    "Example 1: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
    "Answer: a cute teddy bear\nYour output: A\nExample 2: \nQuestion: What is the main object in image?\nOptions: "
    "A. teddy bear B. rabbit C. cat D. dog\nAnswer: Spider\nYour output: Z\nExample 3: \n"
    "Question: What animal is this??\nOptions: There are several options: \nA. a dog\nB. a cat\nC. a bird\n\n"
    "Answer: I think it's the cat\nYour output: ")


def row(group, answer, options=ANIMALS, question="What animal is this?"):
    return {"group": group, "question": question, "options": list(options), "answer": answer}


def test_mmbench_vanilla_judge():
    rows = [row("q1", 1), row("q2", 0), row("q3", 2), row("q4", 1)]
    preds = ["I think it's the cat", "B", "Cannot determine the answer", "It is a fish"]
    judge = Scripted(lambda prompt: "B" if "Answer: I think it's the cat\n" in prompt else "Z")
    choices, details = mmbench.mmbench_judge_choices(rows, preds, "official", judge)
    # q1: can_infer reads nothing -> judge "B"; q2: can_infer B, no request; q3: a reject phrase -> 'Z', no request;
    # q4: judge "Z" -> can_infer 'Z' (a word Z) -> no option
    assert choices == [1, 1, None, None]
    assert details["sources"] == ["judge", "rules", "rules", "judge"] and details["asked"] == 2
    assert judge.calls[0][0] == [{"role": "user", "content": MMBENCH_EXPECTED}]
    assert all(t == 0 and n == 2048 for _, t, n in judge.calls)  # OpenAIWrapper's defaults
    assert details["needs_judge"] == 0.0 and details["unsettled"] == 0 and details["convention"] == "vlmevalkit"
    assert details["prompt_version"] == mmbench.VLMEVALKIT_PROMPT_VERSION
    assert details["replies"][0] == {"row": 0, "group": "q1", "replies": ["B"], "letter": "B", "source": "judge"}
    # no judge: exactly extract_choice, row by row
    assert mmbench.mmbench_judge_choices(rows, preds, "official", None) == (
        [mmbench.extract_choice(p, ANIMALS) for p in preds], {})
    assert mmbench.mmbench_judge_choices(rows, preds, "official", None)[0] == [None, 1, None, None]
    # lmms_eval / opencompass_2023: no judge step
    judge = Scripted(lambda prompt: "B")
    choices, details = mmbench.mmbench_judge_choices(rows, preds, "lmms_eval", judge)
    assert choices == [mmbench.extract_choice(p, ANIMALS, "lmms_eval") for p in preds] and judge.calls == []
    assert "no judge step" in details["convention_note"]
    with pytest.raises(JudgeError, match=r"^eval task 'mmbench': local judge 'down' failed"):
        mmbench.mmbench_judge_choices(rows, preds, "vlmevalkit", broken())


def test_mmbench_judge_retries_and_fallback():
    # an empty reply and an unreadable one are failed tries; the third is read
    judge = Scripted(["", "Hmm, hard to say", "The answer is (B) a cat"])
    assert mmbench.vlmevalkit_letter("I think it's the cat", ANIMALS, "What animal is this?", judge) == \
        mmbench.JudgedLetter("B", "judge", ("", "Hmm, hard to say", "The answer is (B) a cat"),
                             frozenset({"scripted-judge"}))
    # three unreadable replies: a random letter among the options and 'Z'
    judge = Scripted(lambda prompt: "Hmm")
    choices, details = mmbench.mmbench_judge_choices([row("q1", 1)], ["I think it's the cat"], "official", judge,
                                                     seed=0)
    expected = random.Random(0).choice(["A", "B", "C", "Z"])
    assert details["sources"] == ["fallback"] and details["unsettled"] == 1 and details["needs_judge"] == 1.0
    assert choices == [None if expected == "Z" else "ABC".index(expected)] and len(judge.calls) == 3
    # a CJK question gets build_prompt_cn
    assert mmbench.vlmevalkit_judge_prompt("图中是什么动物", ANIMALS, "猫").endswith(
        "例 3: \n问题: 图中是什么动物?\n选项: There are several options: \nA. a dog\nB. a cat\nC. a bird\n\n答案: 猫\n输出: ")


def test_mmbench_circular_judge():
    # one question, three passes (vlmutil circular: options rotated, the answer "a cat" moving B -> A -> C)
    passes = [(ANIMALS, 1), (ANIMALS[1:] + ANIMALS[:1], 0), (ANIMALS[2:] + ANIMALS[:2], 2)]
    rows = [row("q", a, o) for o, a in passes]
    judge = Scripted(lambda prompt: "The cat, so " + ("B" if "A. a dog\n" in prompt else
                                                      "A" if "A. a cat\n" in prompt else "C"))
    # all unreadable, each judged right: hit (3 requests)
    choices, details = mmbench.mmbench_judge_choices(rows, ["I think it's the cat"] * 3, "official", judge)
    assert choices == [1, 0, 2] and len(judge.calls) == 3 and details["sources"] == ["judge"] * 3
    assert mmbench.circular_accuracy({"q": [c == a for c, (_, a) in zip(choices, passes)]}) == 1.0
    # pass 1 prefetched wrong ("C" is a dog there): hit 0 with no circular request; pass 0 judged for its own letter
    judge.calls.clear()
    choices, details = mmbench.mmbench_judge_choices(rows, ["I think it's the cat", "C", "the cat"], "official", judge)
    assert details["sources"] == ["judge", "rules", "not_needed"] and len(judge.calls) == 1
    assert choices == [1, 2, None]
    # pass 0 judged wrong: the group stops there (passes 1 and 2 are never asked)
    wrong = Scripted(lambda prompt: "C")
    choices, details = mmbench.mmbench_judge_choices(rows, ["I think it's the cat"] * 3, "official", wrong)
    assert choices == [2, None, None] and len(wrong.calls) == 1
    assert details["sources"] == ["judge", "not_needed", "not_needed"]
    # every pass read by can_infer: no request
    wrong.calls.clear()
    assert mmbench.mmbench_judge_choices(rows, ["B", "A", "C"], "official", wrong)[0] == [1, 0, 2]
    assert wrong.calls == []


def test_mmbench_judge_items_and_seed():
    # Items as rows: group = id, the question from meta["question"] (the TSV's, no hint) when given
    item = Item(id="7", images=[], question="Hint: zoo\nWhat animal is this?", options=ANIMALS, answer_index=1,
                meta={"question": "What animal is this?"})
    judge = Scripted(lambda prompt: "B")
    assert mmbench.mmbench_judge_choices([item], ["I think it's the cat"], "vlmevalkit", judge)[0] == [1]
    assert judge.prompts == [MMBENCH_EXPECTED]
    # SEED-Bench under VLMEvalKit (SEEDBench_IMG: vanilla, the default prompt)
    options = ["one", "two", "three", "four"]
    judge = Scripted(lambda prompt: "B")
    assert general.seed_correct("I count a pair of them", "B", options, "vlmevalkit", judge=judge,
                                question="How many towels?")
    assert judge.prompts[0].endswith("Question: How many towels??\nOptions: There are several options: \nA. one\n"
                                     "B. two\nC. three\nD. four\n\nAnswer: I count a pair of them\nYour output: ")
    assert not general.seed_correct("I count a pair of them", "B", options, "vlmevalkit")  # no judge: 'Z'
    assert general.seed_correct("B", "B", options, "official", judge=broken())  # no judge step: never asked
    with pytest.raises(JudgeError, match=r"^eval task 'seed'"):
        general.seed_correct("I count a pair of them", "B", options, "vlmevalkit", judge=broken())
