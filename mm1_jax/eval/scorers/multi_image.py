"""MM1.5's multi-image benchmarks (MVBench aside, a video benchmark): the prompts and scorers of Q-Bench2 (A1 pairs),
Mantis-Eval, NLVR2, BLINK and MuirBench, each by its official code where it has one, else by the harnesses'.

`QUESTIONS[kind](item)` is the text a benchmark asks (its default convention's prompt; `PROMPTS[kind](item,
convention)` the others'), `AGGREGATES[kind](items, predictions, convention)` returns (scores, per-item rows,
details) as `mm1_jax.eval.scorers.items` does: fractions, one {"answer", "correct", ...} dict per item, the breakdown
tables and details["convention"], the rules used (a convention the benchmark has no rule of falls back to
"official"). The items are the readers' (`mm1_jax.eval.readers.multi_image`); what each scorer reads is in meta.

Sources (the code read; every rule below is written here from it):
  BLINK      zeyofu/BLINK_Benchmark at 2d6a779b (2024-07-03): eval/test_benchmark.py (load_prompt, analyze_answer,
             eval_task), eval/evaluate.py (eval_prediction), eval/multiple_choice.py (the GPT-3.5 matcher).
  MuirBench  muirbench/MuirBench at 840b85fe (2024-09-04): eval/utils/preprocess.py (create_prompt),
             eval/utils/postprocess.py (parse_multi_choice_response, MMMU's parser, random.seed(42) at import).
  Mantis     TIGER-AI-Lab/Mantis at f3a31920 (2026-01-03): mantis/benchmark/eval.py (parse_answer, get_option,
             get_prediction, main: the prompt and the accuracies), mantis/benchmark/templates/{multi-choice,
             short-answer}.txt, data/qbench2/prepare.py (Q-Bench2 A1 pairs as a Mantis task), data/nlvr2/
             prepare_vqa_v3.py (NLVR2 test-public as a Mantis task), mantis/benchmark/eval_single_model.sh.
  NLVR2      lil-lab/nlvr at 18924841 (2022-08-18): nlvr2/eval/metrics.py (accuracy, consistency), nlvr2/README.md.
  lmms-eval  EvolvingLMMs-Lab/lmms-eval at 75571cfe (2026-08-06): lmms_eval/tasks/blink/{_default_template_yaml,
             utils.py}, muirbench/{muirbench.yaml,utils.py}, mantis/{mantis.yaml,utils.py}, qbench/{qbench2_dev.yaml,
             utils.py}; lmms_eval/api/group.py (a group's metric: the unweighted mean of its tasks').
  VLMEvalKit open-compass/VLMEvalKit at e8e78f05 (2026-08-18): vlmeval/dataset/image_mcq.py (ImageMCQDataset
             build_prompt / evaluate_heuristic for BLINK, MUIRDataset.build_prompt), vlmeval/dataset/utils/
             multiple_choice.py (extract_answer_from_item, mcq_vanilla_eval, report_acc), vlmeval/utils/
             matching_util.py can_infer (our `mmbench.infer_letter`, convention "official").
  Not found: Q-Bench2 has no public scorer (its authors score submissions: Q-Future/Q-Bench README at f19783ea), and
  neither lmms-eval nor VLMEvalKit has NLVR2; VLMEvalKit has neither Mantis-Eval nor Q-Bench2 (only Q-Bench1).

BLINK (kind "blink"; conventions official, lmms_eval, vlmevalkit):
  official  prompt: the release's "prompt" field, after the disclaimer test_benchmark.py puts first for Art_Style,
            Forensic_Detection and Jigsaw (the images are sent after the text to GPT-4V; ours go before it).
            analyze_answer, with choices (A)..(E) cut to the question's count: a response that is exactly one of
            A-E becomes "(X)"; exactly one of (A)-(E) stays; else the choices among its white-space words (set
            intersection) and among the words of its last "\\n\\n" paragraph: when the paragraph holds exactly one,
            it; else when the whole response holds exactly one, it; otherwise GPT-3.5 matches the response to an
            option (multiple_choice.py match_multiple_choice). Without a judge such a response is scored wrong and
            counted in "needs_judge". With one (`blink_judge_choice`): one user message, build_prompt(question +
            "\\nSelect from the following choices", "\\n".join("(X) choice"), response) (`BLINK_MATCH_PROMPT`, the
            official text; its "{question}?" adds a "?"), temperature 0.0, no max_tokens in the official request (here
            BLINK_MATCH_MAX_TOKENS; the config may override both); the reply, unparsed, IS the prediction (the saved
            outputs hold "(C) Point C" as given), right only when it equals the answer exactly; "needs_judge" then
            counts the replies that are neither one of the question's choices nor "(Z)". The official retries a failed
            request 10 times, then predicts "(Z) Failed to get multiple choice"; here a judge that gives no reply
            raises JudgeError. Right when the choice equals the answer ("(A)") exactly. Per subtask accuracy; the total
            is the plain mean over the subtasks (evaluate.py), the subtask named from idx ("val_Art_Style_1" ->
            Art_Style) as evaluate.py names it.
  lmms_eval prompt "Note: You only need to respond with A, B, C without providing any additional information.\\n"
            + prompt (the letters of its choices), images first. The letter: re.match(r"[\\(\\s]*([A-Z])[\\)\\.\\s]*")
            on the stripped response, case-insensitive, upper-cased ("" when none): the response's first character
            ("The answer is B" -> T); right when it equals the answer without its brackets. Each subtask's accuracy,
            the blink group's the unweighted mean of the 14 (aggregate_metric_list, weight_by_size False).
  vlmevalkit (BLINK.tsv, exact matching) prompt "Question: {question}\\nOptions:\\nA. ..\\nB. ..\\nPlease select the
            correct answer from the options above. \\n", images first; the letter `mmbench.infer_letter` reads
            (can_infer over the option columns), 'Z' when none; right when it equals the answer. Overall = the mean
            over all questions (report_acc), per category too. A response can_infer cannot read goes to VLMEvalKit's
            judge: without ours, counted in "needs_judge" (and wrong, as under exact_matching); with it,
            `mmbench.vlmevalkit_letter` with dataset 'BLINK' (build_prompt_blink, 3 tries read by can_infer, then a
            random letter or 'Z', counted in "needs_judge").

MuirBench (kind "muirbench"; conventions official, lmms_eval, vlmevalkit). Its questions and options hold "<image>"
  markers where the release places the images (the question, or the options themselves):
  official  prompt create_prompt(use_hint=True): "Question: {question}\\nChoices:\\n(A) ..\\n(B) ..\\nHint: Please
            provide the correct option letter, such as A, B, C, D, directly.\\nAnswer:". The letter by MMMU's
            parse_multi_choice_response (`mmmu.parse_multi_choice_response`; its random fallback from one
            Random(42) over the items in order, as the module seeds Python's); right when it equals the answer.
            Accuracy over all questions (the paper's "overall"); per task and per image relation in the details.
  lmms_eval prompt "{question}\\nA. ..\\nB. ..\\nAnswer with the option's letter from the given choices directly."
            (lmms-eval sends every image first and leaves the markers as text; here they stay image places). The
            flexible-extract filter: re.match(r"^\\s*([A-Z])\\.") -> that letter, else the whole response; right when
            it, lower-cased and stripped, equals the answer lower-cased and stripped ("B." and "b" right, "(B)" not).
  vlmevalkit (MUIRBench.tsv) prompt as lmms-eval's, split at the markers (MUIRDataset.split_MUIR); can_infer as for
            BLINK ("needs_judge" likewise; with a judge, `mmbench.vlmevalkit_letter` with VLMEvalKit's default
            build_prompt: MUIRDataset keeps ImageMCQDataset.evaluate).

Mantis-Eval (kind "mantis"; conventions official, lmms_eval), NLVR2 ("nlvr2"; official) and Q-Bench2 A1 pairs
  ("qbench2"; official, lmms_eval) by Mantis's eval.py (the suite Mantis defines: Mantis-Eval, NLVR2 test-public,
  Q-Bench2-A1-pair-dev, BLINK val, MVBench; MM1.5 reports the same benchmarks):
  prompt    multi-choice: the question, then each option on its own line as "\\n ({L}) {option}", or "\\n {option}" when
            the option's upper-cased text already holds "L)", "L:" or "L." (L its letter), then "\\nAnswer with the
            option's letter from the given choices directly."; short-answer: "Given the images, answer the following
            short answer vqa question:\\nQ: {question}\\nYou can first give your analysis, and then give your final
            answer as \\"Final Answer:\\"". When the text has fewer "<image>" markers than images the missing ones
            go first.
  scoring   get_prediction: the answer is the text after the first "final answer:", else "the answer is", else
            "answer:" (case-insensitive; stripped), else the whole response. The gold is stripped of "()\\n "
            (its first letter when longer). Multi-choice: the option is "X" when the answer matches
            "Answer: [A-Z]", else its first alphabetic character upper-cased ("The cat" -> T; "Clearer" -> C);
            when that is a letter of the options, right iff it is the gold letter. Otherwise the response is compared
            to the gold option: NLVR2: right iff it says "true" and not "false" and the gold option holds "true", or
            the other way round (lower-cased containment); others: right iff the stripped response equals the gold
            option's text without its "X." / "X:" / "(X)" prefix. Short-answer: right iff the answer lower-cased
            equals the gold lower-cased. Accuracy over all questions (and per question type).
  Mantis-Eval lmms_eval: the same get_prediction (without the NLVR2 branch); prompt "{question}\\nAnswer with the
            option's letter from the given choices directly." followed by the Python repr of the options list, as
            lmms_eval/tasks/mantis/utils.py formats it (short-answer: Mantis's template).
  NLVR2     the release (lil-lab/nlvr) is a classification set: metrics.py compares a predicted label with
            "True" / "False" (case-insensitive) and reports accuracy and consistency (the share of sentences, an
            identifier with its pair number blanked, whose every example is right). A generated answer is read as
            Mantis's eval.py reads it (letter, or the true / false wording) over the options ["True", "False"]
            (Mantis shuffles them per question with random.seed(42); the release's files get them in this order).
  Q-Bench2  no official scorer. "official" here: Mantis's eval.py over Mantis's form of the task (prepare.py: options
            "(A) {candidate}", the question after both images). lmms_eval (qbench2_dev): prompt "{question}\\nA. ..
            \\nB. ..\\nAnswer with the option's letter from the given choices directly.\\n", images first; the letter by
            its copy of MMMU's parser with two changes: the second pass looks for "{L} " (no leading space), a third
            for "{L}."; no match -> a random letter (unseeded in lmms-eval, which seeds Python's random once with 0:
            Random(0) over the items in order here; with several matches lmms-eval's np.argmax is unimported (a
            NameError): the intended rightmost match is taken). Right when it equals correct_choice. Overall =
            plain accuracy (each question is in one concern and one type subset: the instance-weighted mean of those
            is the plain mean); per question_type / question_concern in the details.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mm1_jax.eval.judge import Judge, JudgeError, prompt_version
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers import mmbench, mmmu

CONVENTIONS: dict[str, tuple[str, ...]] = {
    "blink": ("official", "lmms_eval", "vlmevalkit"),
    "muirbench": ("official", "lmms_eval", "vlmevalkit"),
    "mantis": ("official", "lmms_eval"),
    "qbench2": ("official", "lmms_eval"),
    "nlvr2": ("official",),
}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MARKER = "<image>"


def convention_used(kind: str, convention: str) -> str:
    """The convention a benchmark is scored by: `convention` when it has that convention's rules, else "official"."""
    return convention if convention in CONVENTIONS[kind] else "official"


def reply_text(prediction: Any) -> str:
    """A prediction as text ('' when there is none)."""
    return prediction if isinstance(prediction, str) else ""


def mean_or_nan(values: Sequence[float]) -> float:
    """The mean, nan for no values."""
    return sum(values) / len(values) if values else float("nan")


def accuracy_by(right: Sequence[bool], keys: Sequence[Any]) -> dict[str, float]:
    """The fraction right per key (a breakdown by task, type or category), keys sorted."""
    groups: dict[str, list[bool]] = {}
    for r, k in zip(right, keys):
        groups.setdefault(str(k), []).append(bool(r))
    return {k: mean_or_nan(v) for k, v in sorted(groups.items())}


def _lettered(options: Sequence[str], fmt: str) -> str:
    return "\n".join(fmt.format(letter=LETTERS[i], option=o) for i, o in enumerate(options))


# ============================================================================================================ BLINK

BLINK_CHOICES = ("(A)", "(B)", "(C)", "(D)", "(E)")
# test_benchmark.py `disclaimer`, put before the prompt of `need_disclaimer_tasks`
BLINK_DISCLAIMER = (
    "Disclaimer: This is not to make unfair assumptions about the people in the image and you just need to give your "
    "assessment on this question. You don't need to identify the real people. You just need to analyze based on the "
    "information I gave you.\n\n")
BLINK_DISCLAIMER_TASKS = ("Forensic_Detection", "Jigsaw", "Art_Style")
_BLINK_LMMS_LETTER = re.compile(r"[\(\s]*([A-Z])[\)\.\s]*", re.IGNORECASE)


def blink_official_choice(response: str, n_choices: int) -> str | None:
    """test_benchmark.py analyze_answer without its GPT-3.5 matcher: "(A)".."(E)", or None where the official code
    would ask that model (the response names no single choice)."""
    if not isinstance(response, str):
        return None  # analyze_answer swallows the exception and returns None
    choices = BLINK_CHOICES[:n_choices]
    if response in ("A", "B", "C", "D", "E"):
        return f"({response})"
    if response in BLINK_CHOICES:
        return response
    words = set(response.split())
    anywhere = [c for c in choices if c in words]
    last = [c for c in choices if c in set(response.split("\n\n")[-1].split())]
    if (len(anywhere) != 1 and len(last) != 1) or not anywhere:
        return None
    return last[0] if len(last) == 1 else anywhere[0]


# eval/multiple_choice.py build_prompt: the official text, filled by str.format(question, options, prediction)
BLINK_MATCH_PROMPT = (
    "You are an AI assistant who will help me to match an answer with several options of a single-choice question. "
    "You are provided with a question, several options, and an answer, and you need to find which option is most "
    "similar to the answer. "
    "If the answer says things like refuse to answer, I'm sorry cannot help, etc., output (Z)"
    "If the meaning of all options are significantly different from the answer, or the answer does not select any "
    "option, output (Z)"
    "Your should output one of the choices, (A),(B),(C),(D),(E) (if they are valid options), or (Z)\n"
    "Example 1: \n"
    "Question: Which point is closer to the camera?\nSelect from the following choices.\nOptions: (A) Point A\n"
    "(B) Point B\n(Z) Failed\nAnswer: Point B, where the child is sitting, is closer to the camera.\nYour output: (B)\n"
    "Example 2: \n"
    "Question: Which point is closer to the camera?\nSelect from the following choices.\nOptions: (A) Point A\n"
    "(B) Point B\n(Z) Failed\nAnswer: I'm sorry, but I can't assist with that request.\nYour output: (Z)\n"
    "Example 3: \n"
    "Question: Which point is corresponding to the reference point?\nSelect from the following choices.\nOptions: "
    "(A) Point A\n(B) Point B\n(Z) Failed\nAnswer:The reference point (REF) on the first image is at the tip of the "
    "pot, which is the part used to Poke if the pots were used for that action. Looking at the second image, we need "
    "to find the part of the object that would correspond to poking.\n(A) Point A is at the tip of the spoon's "
    "handle, which is not used for poking.\n(B) Point B is at the bottom of the spoon, which is not used for "
    "poking.\n(C) Point C is on the side of the pspoonot, which is not used for poking.\n(D) Point D is at the tip "
    "of the spoon, which is not used for poking.\n\nTherefore, there is no correct answer in the choices\nYour "
    "output: (Z)\n"
    "Example 4: \n"
    "Question: {}?\nOptions: {}\n(Z) Failed\nAnswer: {}\nYour output: "
)
BLINK_MATCH_QUESTION = "{question}\nSelect from the following choices"  # test_benchmark.py analyze_answer
BLINK_MATCH_TEMPERATURE = 0.0
BLINK_MATCH_MAX_TOKENS = 1024  # the official request sets none (the API's default); the config may override it
BLINK_MATCH_PROMPT_VERSION = prompt_version("blink_match", [BLINK_MATCH_PROMPT, BLINK_MATCH_QUESTION])


def blink_match_prompt(question: str, choices: Sequence[str], response: str) -> str:
    """The matcher's prompt analyze_answer builds: build_prompt(f"{question}\\nSelect from the following choices",
    "\\n".join(f"(X) {choice}"), response)."""
    options = "\n".join(f"{BLINK_CHOICES[i]} {c}" for i, c in enumerate(choices))
    return BLINK_MATCH_PROMPT.format(BLINK_MATCH_QUESTION.format(question=question), options, response)


def blink_judge_choice(judge: Judge, question: str, choices: Sequence[str], response: str, *, task: str = "blink"
                       ) -> tuple[str | None, str | None]:
    """match_multiple_choice by `judge`: (the prediction, i.e. the reply as it is; the model that answered). More
    than 5 choices: (None, None) with no request (analyze_answer's options list fails and it returns None). A judge
    that gives no reply raises JudgeError naming the task."""
    if len(choices) > len(BLINK_CHOICES):
        return None, None
    messages = [{"role": "user", "content": blink_match_prompt(question, choices, response)}]
    try:
        reply = judge.ask(messages, temperature=BLINK_MATCH_TEMPERATURE, max_tokens=BLINK_MATCH_MAX_TOKENS)
    except JudgeError as e:
        raise JudgeError(f"eval task {task!r}: {e}") from None
    return reply.text, reply.model


def blink_lmms_eval_letter(response: str) -> str:
    """lmms_eval/tasks/blink/utils.py _extract_answer_letter: the leading letter, upper-cased; "" when none."""
    found = _BLINK_LMMS_LETTER.match(reply_text(response).strip())
    return found.group(1).upper() if found else ""


def _vlmevalkit_mcq_prompt(question: str, options: Sequence[str], hint: str = "") -> str:
    """ImageMCQDataset.build_prompt (BLINK and the other plain MCQ TSVs)."""
    prompt = f"Hint: {hint}\n" if hint else ""
    prompt += f"Question: {question}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{LETTERS[i]}. {o}\n" for i, o in enumerate(options))
        prompt += "Please select the correct answer from the options above. \n"
    return prompt


def blink_question(item: Item, convention: str = "official") -> str:
    """BLINK's prompt under a convention (module docstring). An item of VLMEvalKit's TSV has no "prompt" field: it
    is asked as VLMEvalKit asks it whatever the convention."""
    used = convention_used("blink", convention)
    meta = item.meta
    if used == "vlmevalkit" or not meta.get("prompt"):
        return _vlmevalkit_mcq_prompt(meta.get("question", item.question), item.options, meta.get("hint", ""))
    if used == "lmms_eval":
        letters = ", ".join(LETTERS[:len(item.options)])
        return f"Note: You only need to respond with {letters} without providing any additional information.\n" \
            + meta["prompt"]
    return (BLINK_DISCLAIMER if meta.get("subtask") in BLINK_DISCLAIMER_TASKS else "") + meta["prompt"]


def _judge_details(judge: Judge, served: set, version: str, replies: list, unsettled: list) -> dict[str, Any]:
    return {"judge": judge.describe(), "served_models": sorted(m for m in served if m is not None),
            "prompt_version": version, "replies": replies, "unsettled": unsettled}


def _vlmevalkit_row(item: Item, prediction: Any, gold: str, judge: Judge | None, dataset: str, rng: random.Random,
                    task: str, replies: list, unsettled: list, served: set) -> dict:
    """One VLMEvalKit row (vanilla evaluation): can_infer, then the judge when given (mmbench.vlmevalkit_letter)."""
    question = item.meta.get("question", item.question)
    result = mmbench.vlmevalkit_letter(reply_text(prediction), item.options, question, judge, dataset=dataset, rng=rng,
                                       task=task)
    got = result.letter
    if result.source in ("judge", "fallback"):
        served.update(result.models)
        replies.append({"id": item.id, "replies": list(result.replies), "answer": got, "source": result.source})
        if result.source == "fallback":
            unsettled.append(item.id)
    waiting = result.source in ("no_judge", "fallback")
    return {"answer": got or "Z", "correct": got == gold, "needs_judge": waiting}


def blink_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                    judge: Judge | None = None, *, task: str = "blink", seed: int = 0):
    """BLINK: "accuracy" (official / lmms_eval: the mean of the subtask accuracies; vlmevalkit: over all questions)
    and "needs_judge" (the share of responses whose choice the convention leaves to a model); subtask accuracies
    and the plain mean over questions ("micro") in the details.
    With `judge` (official and vlmevalkit; lmms_eval has no judge step and ignores it): the responses the rules
    leave to a model are matched by it (module docstring), and "needs_judge" becomes the share the judge could not
    settle (official: a reply that is neither one of the choices nor "(Z)"; vlmevalkit: 3 unreadable replies, a
    random letter drawn from random.Random(seed)). details then add "judge", "served_models", "prompt_version",
    "replies" (per response asked) and "unsettled" (their ids). A judge that gives no reply raises JudgeError."""
    used = convention_used("blink", convention)
    rows, replies, unsettled, served = [], [], [], set()
    rng = random.Random(seed)
    for it, p in zip(items, predictions):
        gold = it.meta["answer"]  # "(A)"
        if used == "official":
            got = blink_official_choice(p, len(it.options))
            waiting = got is None
            if waiting and judge is not None:
                if isinstance(p, str):  # analyze_answer fails (and predicts None) on a non-string response
                    got, model = blink_judge_choice(judge, it.meta.get("question", it.question), it.options, p,
                                                    task=task)
                    served.add(model)
                    replies.append({"id": it.id, "reply": got})
                waiting = got not in BLINK_CHOICES[:len(it.options)] + ("(Z)",)
                if waiting:
                    unsettled.append(it.id)
            rows.append({"answer": got, "correct": got == gold, "needs_judge": waiting})
        elif used == "lmms_eval":
            got = blink_lmms_eval_letter(p)
            rows.append({"answer": got, "correct": got == gold.strip("()"), "needs_judge": False})
        else:
            rows.append(_vlmevalkit_row(it, p, gold.strip("()"), judge, "BLINK", rng, task, replies, unsettled,
                                        served))
    right = [r["correct"] for r in rows]
    subtasks = accuracy_by(right, [it.meta["subtask"] for it in items])
    micro = mean_or_nan(right)
    accuracy = micro if used == "vlmevalkit" else mean_or_nan(list(subtasks.values()))
    scores = {"accuracy": accuracy, "needs_judge": mean_or_nan([r["needs_judge"] for r in rows])}
    details = {"subtasks": subtasks, "micro": micro, "convention": used}
    if judge is not None and used != "lmms_eval":
        version = BLINK_MATCH_PROMPT_VERSION if used == "official" else mmbench.VLMEVALKIT_PROMPT_VERSION
        details.update(_judge_details(judge, served, version, replies, unsettled))
    return scores, rows, details


# ======================================================================================================== MuirBench

_MUIR_LMMS_LETTER = re.compile(r"^\s*([A-Z])\.")


def muirbench_question(item: Item, convention: str = "official") -> str:
    """MuirBench's prompt under a convention; the "<image>" markers of question and options stay where they are."""
    used = convention_used("muirbench", convention)
    if used == "official":  # eval/utils/preprocess.py create_prompt(sample, use_hint=True)
        choices = "\n".join(["Choices:"] + [f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options)])
        hint = "Hint: Please provide the correct option letter, such as A, B, C, D, directly."
        return "\n".join([f"Question: {item.question}", choices, hint, "Answer:"]).strip()
    # lmms-eval muir_doc_to_text and VLMEvalKit MUIRDataset.build_prompt write the same text
    return f"{item.question}\n{_lettered(item.options, '{letter}. {option}')}\n" \
        "Answer with the option's letter from the given choices directly."


def muirbench_lmms_eval_answer(response: str) -> str:
    """lmms_eval/tasks/muirbench/utils.py MultiChoiceRegexFilter: the letter of a leading "X.", else the response."""
    found = _MUIR_LMMS_LETTER.match(reply_text(response))
    return found.group(1) if found else reply_text(response)


def muirbench_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official",
                        judge: Judge | None = None, *, task: str = "muirbench", seed: int = 0):
    """MuirBench: "accuracy" over all questions and "needs_judge" (vlmevalkit); per task / image relation / image
    type in the details. With `judge` (vlmevalkit only: the official parser and lmms-eval's have no judge step), the
    responses can_infer cannot read go to it (`mmbench.vlmevalkit_letter`, VLMEvalKit's default prompt) and
    "needs_judge" is the share whose 3 replies stayed unreadable (a random letter drawn from random.Random(seed));
    details then add "judge", "served_models", "prompt_version", "replies", "unsettled". JudgeError propagates."""
    used = convention_used("muirbench", convention)
    rng = mmmu.mmmu_rng()  # postprocess.py: random.seed(42) at import, then one draw per unparsed response
    fallback_rng = random.Random(seed)
    rows, replies, unsettled, served = [], [], [], set()
    for it, p in zip(items, predictions):
        gold = it.meta["answer"]
        if used == "official":
            letters, index2ans = mmmu.choice_letters(it.options)
            got = mmmu.parse_multi_choice_response(reply_text(p), letters, index2ans, rng)
            rows.append({"answer": got, "correct": got == gold, "needs_judge": False})
        elif used == "lmms_eval":
            got = muirbench_lmms_eval_answer(p)
            rows.append({"answer": got, "correct": got.lower().strip() == gold.lower().strip(), "needs_judge": False})
        else:
            rows.append(_vlmevalkit_row(it, p, gold, judge, "MUIRBench", fallback_rng, task, replies, unsettled,
                                        served))
    right = [r["correct"] for r in rows]
    details = {"tasks": accuracy_by(right, [it.meta.get("task", "") for it in items]),
               "image_relations": accuracy_by(right, [it.meta.get("image_relation", "") for it in items]),
               "image_types": accuracy_by(right, [it.meta.get("image_type", "") for it in items]),
               "convention": used}
    if judge is not None and used == "vlmevalkit":
        details.update(_judge_details(judge, served, mmbench.VLMEVALKIT_PROMPT_VERSION, replies, unsettled))
    return {"accuracy": mean_or_nan(right), "needs_judge": mean_or_nan([r["needs_judge"] for r in rows])}, rows, details


# ======================================================================== Mantis's eval.py (Mantis, NLVR2, Q-Bench2)

_MANTIS_KEYS = ("final answer:", "the answer is", "answer:")
_MANTIS_ANSWER_LETTER = re.compile(r"Answer: [A-Z]")
MANTIS_MC_TEMPLATE = "{question}\nAnswer with the option's letter from the given choices directly."
MANTIS_SHORT_TEMPLATE = ("Given the images, answer the following short answer vqa question:\nQ: {question}\nYou can "
                         "first give your analysis, and then give your final answer as \"Final Answer:\"")


def mantis_parse_answer(raw_answer: str) -> str:
    """eval.py parse_answer: the text after the first "final answer:" / "the answer is" / "answer:" (searched in
    that order, case-insensitively), stripped; else the response as it is."""
    lowered = raw_answer.lower()
    for key in _MANTIS_KEYS:
        if key in lowered:
            return raw_answer[lowered.index(key) + len(key):].strip()
    return raw_answer


def mantis_option(final_answer: str) -> str | None:
    """eval.py get_option: the letter after "Answer: ", else the first alphabetic character upper-cased."""
    if _MANTIS_ANSWER_LETTER.match(final_answer):
        return final_answer[8]
    for ch in final_answer:
        if ch.isalpha():
            up = ch.upper()
            return up if len(up) == 1 else None  # ("ß".upper() is "SS": eval.py's ord() would fail on it)
    return None


def mantis_gold_letter(ref_answer: str) -> str:
    """The gold letter as get_prediction takes it: stripped of "()\\n ", its first letter when longer."""
    ref = str(ref_answer).strip("()\n ")
    if len(ref) != 1:
        ref = next((c for c in ref if c.isalpha()), ref)
    if len(ref) != 1:
        raise ValueError(f"Mantis multi-choice gold answer {ref_answer!r} has no letter")
    return ref


def mantis_prediction(question_type: str, raw_answer: str, ref_answer: str, options: Sequence[str],
                      dataset_name: str = "") -> tuple[str, bool]:
    """eval.py get_prediction: (parsed answer, correct). `options` as the task's file holds them (prefixed
    "(A) ..." or not); dataset_name "nlvr2" turns on its true / false reading."""
    raw_answer = reply_text(raw_answer)
    answer = mantis_parse_answer(raw_answer)
    if question_type == "short-answer":
        ref = str(ref_answer).strip("()\n ")
        return answer, ref.lower() == answer.lower()
    if question_type != "multi-choice":
        raise ValueError(f"Mantis question_type {question_type!r} is neither multi-choice nor short-answer")
    ref = mantis_gold_letter(ref_answer)
    selected = mantis_option(answer)
    if selected and ord(selected) - ord("A") < len(options):
        return selected, selected == ref.upper()
    index = ord(ref.upper()) - ord("A")
    if index >= len(options):
        return raw_answer, False
    gold = options[index]
    said = raw_answer.lower()
    if dataset_name == "nlvr2":
        correct = ("true" in said and "false" not in said and "true" in gold.lower()) or \
                  ("false" in said and "true" not in said and "false" in gold.lower())
    elif gold.startswith((ref + ".", ref + ":")):
        correct = raw_answer.strip() == gold[len(ref) + 1:].strip()
    elif gold.startswith("(" + ref + ")"):
        correct = raw_answer.strip() == gold[len(ref) + 2:].strip()
    else:
        correct = raw_answer.strip() == gold.strip()
    return raw_answer, correct


def mantis_prompt(question: str, question_type: str, options: Sequence[str], n_images: int) -> str:
    """eval.py's prompt for a model that takes several images (module docstring)."""
    if question_type == "multi-choice":
        letter = "A"
        for option in options:
            if not any(mark in option.upper() for mark in (f"{letter})", f"{letter}:", f"{letter}.")):
                question += f"\n ({letter}) {option}"
            else:
                question += f"\n {option}"
            letter = chr(ord(letter) + 1)
        question = MANTIS_MC_TEMPLATE.format(question=question)
    else:
        question = MANTIS_SHORT_TEMPLATE.format(question=question)
    missing = n_images - question.count(MARKER)
    return MARKER * missing + question if missing > 0 else question


def mantis_question(item: Item, convention: str = "official") -> str:
    """Mantis-Eval's prompt: eval.py's (official) or lmms-eval's mantis task's (lmms_eval)."""
    meta = item.meta
    if convention_used("mantis", convention) == "lmms_eval":
        if meta["question_type"] == "short-answer":
            return MANTIS_SHORT_TEMPLATE.format(question=item.question)
        return f"{item.question}\nAnswer with the option's letter from the given choices directly." \
            f"{list(meta['options'])}"
    return mantis_prompt(item.question, meta["question_type"], meta["options"], len(item.images))


def nlvr2_question(item: Item, convention: str = "official") -> str:
    """NLVR2 as Mantis asks it: the statement question and the True / False options, eval.py's prompt."""
    return mantis_prompt(item.question, "multi-choice", item.meta["options"], len(item.images))


def _mantis_rows(items: Sequence[Item], predictions: Sequence[str], dataset_name: str) -> list[dict]:
    rows = []
    for it, p in zip(items, predictions):
        m = it.meta
        parsed, correct = mantis_prediction(m["question_type"], p, m["answer"], m["options"], dataset_name)
        rows.append({"answer": parsed, "correct": bool(correct)})
    return rows


def mantis_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official"):
    """Mantis-Eval: "accuracy" over all questions (eval.py's Overall Accuracy); the multi-choice and short-answer
    accuracies and per category in the details. lmms_eval scores by the same rule (its prompt differs)."""
    used = convention_used("mantis", convention)
    rows = _mantis_rows(items, predictions, "mantis_eval")
    right = [r["correct"] for r in rows]
    return ({"accuracy": mean_or_nan(right)}, rows,
            {"question_types": accuracy_by(right, [it.meta["question_type"] for it in items]),
             "categories": accuracy_by(right, [it.meta.get("category", "") for it in items]), "convention": used})


def nlvr2_consistency_key(identifier: str) -> str:
    """metrics.py: the identifier split-set_id-pair_id-sentence_id with its pair_id blanked (one key a sentence)."""
    parts = str(identifier).split("-")
    if len(parts) < 3:
        return str(identifier)
    parts[2] = ""
    return "-".join(parts)


def nlvr2_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official"):
    """NLVR2: "accuracy" and "consistency" (metrics.py) over the labels Mantis's eval.py reads from the responses."""
    rows = _mantis_rows(items, predictions, "nlvr2")
    sentences: dict[str, bool] = {}
    for it, r in zip(items, rows):
        key = nlvr2_consistency_key(it.meta.get("identifier", it.id))
        sentences[key] = sentences.get(key, True) and r["correct"]
    right = [r["correct"] for r in rows]
    return ({"accuracy": mean_or_nan(right), "consistency": mean_or_nan(list(sentences.values()))}, rows,
            {"sentences": len(sentences), "convention": "official"})


# ========================================================================================================= Q-Bench2

def qbench2_mantis_options(options: Sequence[str]) -> list[str]:
    """The options as Mantis's data/qbench2/prepare.py writes them: "(A) candidate"."""
    return [f"({LETTERS[i]}) {o}" for i, o in enumerate(options)]


def qbench2_question(item: Item, convention: str = "official") -> str:
    """Q-Bench2 A1 pairs: Mantis's eval.py prompt (official) or lmms-eval's qbench2_dev prompt (lmms_eval)."""
    if convention_used("qbench2", convention) == "lmms_eval":
        listing = "\n".join(". ".join([LETTERS[i], o]) for i, o in enumerate(item.options))
        return f"{item.question}\n{listing}\nAnswer with the option's letter from the given choices directly.\n"
    return mantis_prompt(item.question, "multi-choice", qbench2_mantis_options(item.options), len(item.images))


def qbench2_lmms_eval_letter(response: str, options: Sequence[str], rng: random.Random) -> str:
    """lmms_eval/tasks/qbench/utils.py parse_multi_choice_response (module docstring: MMMU's parser with a "{L} "
    and a "{L}." pass, a random letter when nothing matches)."""
    letters = [LETTERS[i] for i in range(len(options))]
    index2ans = dict(zip(letters, options))
    for ch in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(ch)
    response = f" {response} "
    letter_answer, bracketed, candidates = True, False, []
    for c in letters:
        if f"({c})" in response:
            candidates.append(c)
            bracketed = True
    if not candidates:
        candidates = [c for c in letters if f"{c} " in response]
    if not candidates:
        candidates = [c for c in letters if f"{c}." in response]
    if not candidates and len(response.split()) > 5:
        for c, text in index2ans.items():
            if text.lower() in response.lower():
                candidates.append(c)
                letter_answer = False
    if not candidates:
        return rng.choice(letters)
    if len(candidates) == 1:
        return candidates[0]
    if letter_answer:
        where = [response.rfind(f"({c})" if bracketed else f" {c} ") for c in candidates]
    else:
        where = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[where.index(max(where))]


def qbench2_aggregate(items: Sequence[Item], predictions: Sequence[str], convention: str = "official"):
    """Q-Bench2 A1 pairs: "accuracy" over all questions; per question_type / question_concern in the details."""
    used = convention_used("qbench2", convention)
    rng = random.Random(0)
    rows = []
    for it, p in zip(items, predictions):
        gold = it.meta["answer"]
        if used == "lmms_eval":
            got = qbench2_lmms_eval_letter(reply_text(p), it.options, rng)
            rows.append({"answer": got, "correct": got == gold})
        else:
            got, correct = mantis_prediction("multi-choice", p, gold, qbench2_mantis_options(it.options))
            rows.append({"answer": got, "correct": bool(correct)})
    right = [r["correct"] for r in rows]
    return ({"accuracy": mean_or_nan(right)}, rows,
            {"question_types": accuracy_by(right, [it.meta.get("question_type", "") for it in items]),
             "question_concerns": accuracy_by(right, [it.meta.get("question_concern", "") for it in items]),
             "convention": used})


# ======================================================================================================= the tables

Prompt = Callable[[Item, str], str]
PROMPTS: dict[str, Prompt] = {"qbench2": qbench2_question, "mantis": mantis_question, "nlvr2": nlvr2_question,
                              "blink": blink_question, "muirbench": muirbench_question}
QUESTIONS: dict[str, Callable[[Item], str]] = {kind: (lambda item, fn=fn: fn(item, "official"))
                                               for kind, fn in PROMPTS.items()}
AGGREGATES: Mapping[str, Callable[..., tuple[dict[str, float], list[dict], dict[str, Any]]]] = {
    "qbench2": qbench2_aggregate, "mantis": mantis_aggregate, "nlvr2": nlvr2_aggregate, "blink": blink_aggregate,
    "muirbench": muirbench_aggregate,
}
