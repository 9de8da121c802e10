"""Score a predictions file with a task's scorers: VLMEvalKit's table or lmms-eval's per-sample log, ours or a
harness's, so that the same predictions can be compared under each convention line by line.

    python -m mm1_jax.eval.rescore --task=textvqa --predictions=out/vlmevalkit/textvqa_0shot.tsv [--convention=...]

Formats (what `results.write_harness_files` writes, and what the harnesses write):
  .tsv    VLMEvalKit's prediction table: `index`, `answer` (one string, or a Python list literal of the references),
          `prediction`; multiple-choice tasks also the option columns A, B, ... and `answer` a letter, with circular
          passes at index i + k * 1e6 (vlmeval/dataset/utils/multiple_choice.py groups them by index % 1e6).
  .jsonl  lmms-eval's samples log: `doc_id`, `target` (a string or a list literal), `filtered_resps` (the prediction).
A file the scorer cannot read gets one sentence naming the file, the record and the field.
"""
from __future__ import annotations

import ast
import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from mm1_jax.eval import datasets
from mm1_jax.eval.prompts import Item
from mm1_jax.eval.scorers import mmbench

CIRCULAR_OFFSET = 1_000_000


def _fail(path: str, where: str, what: str) -> ValueError:
    return ValueError(f"predictions file {path}: {where}: {what}")


def _references(path: str, where: str, value: Any) -> list[str]:
    """A reference column: a list of strings, a Python list literal of them, or one string."""
    if isinstance(value, list):
        refs = value
    elif isinstance(value, str) and value.startswith("["):
        try:
            refs = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise _fail(path, where, f"field 'answer' {value[:60]!r} is not a list literal") from None
    else:
        refs = [value]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise _fail(path, where, f"field 'answer' {value!r} is not a string or a list of strings")
    return refs


def read_predictions(path: str) -> list[dict[str, Any]]:
    """Rows {"index", "prediction", "answers", "options"} from a VLMEvalKit table (.tsv) or lmms-eval samples log
    (.jsonl); ValueError naming the file, the record and the field."""
    rows = []
    if path.endswith(".tsv"):
        try:
            with open(path, newline="", encoding="utf-8") as f:
                table = list(csv.DictReader(f, delimiter="\t"))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ValueError(f"predictions file {path} cannot be read ({e}).") from None
        for n, line in enumerate(table, start=2):  # line 1 is the header
            where = f"line {n}"
            for field in ("index", "answer", "prediction"):
                if line.get(field) is None:
                    raise _fail(path, where, f"lacks the field {field!r} (VLMEvalKit's columns: index, answer, "
                                             "prediction, and A, B, ... for multiple choice)")
            try:
                index = int(float(line["index"]))
            except ValueError:
                raise _fail(path, where, f"field 'index' {line['index']!r} is not a number") from None
            options = [line[c] for c in "ABCDEFGHIJ" if line.get(c)]
            answers = [line["answer"]] if options else _references(path, where, line["answer"])
            rows.append({"index": index, "prediction": line["prediction"], "answers": answers, "options": options})
    elif path.endswith(".jsonl"):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"predictions file {path} cannot be read ({e}).") from None
        for n, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            where = f"line {n}"
            try:
                sample = json.loads(text)
            except json.JSONDecodeError as e:
                raise _fail(path, where, f"is not JSON ({e.msg})") from None
            for field in ("doc_id", "target", "filtered_resps"):
                if not isinstance(sample, dict) or field not in sample:
                    raise _fail(path, where, f"lacks the field {field!r} (lmms-eval's samples: doc_id, target, "
                                             "filtered_resps)")
            prediction = sample["filtered_resps"]
            prediction = prediction[0] if isinstance(prediction, list) and len(prediction) == 1 else prediction
            if not isinstance(prediction, str):
                raise _fail(path, where, f"field 'filtered_resps' {prediction!r} is not one generated text")
            rows.append({"index": sample["doc_id"], "prediction": prediction,
                         "answers": _references(path, where, sample["target"]), "options": []})
    else:
        raise ValueError(f"predictions file {path}: expected VLMEvalKit's table (.tsv) or lmms-eval's samples log "
                         "(.jsonl).")
    return rows


def score_file(path: str, task: str, convention: str = "official", eval_cfg: Any = None) -> dict[str, float]:
    """The task's scores of the predictions in `path` under `convention` (what run_tasks reports for them)."""
    if convention not in datasets.CONVENTIONS:
        raise ValueError(f"--convention={convention!r} is not one of {', '.join(datasets.CONVENTIONS)}.")
    spec = datasets.task_for(task, eval_cfg)
    rows = read_predictions(path)
    if spec.fmt == "choice":
        if rows and not rows[0]["options"]:
            raise ValueError(f"predictions file {path}: task {task!r} is multiple choice; its predictions need the "
                             "option columns A, B, ... of VLMEvalKit's table.")
        hits: dict[int, dict[int, bool]] = {}
        extraction = "official" if convention == "vlmevalkit" else convention
        for row in rows:
            choice = mmbench.extract_choice(row["prediction"], row["options"], extraction)
            right = choice is not None and "ABCDEFGHIJ"[choice] == row["answers"][0].strip().upper()
            hits.setdefault(row["index"] % CIRCULAR_OFFSET, {})[row["index"] // CIRCULAR_OFFSET] = right
        passes = {q: [by_pass[k] for k in sorted(by_pass)] for q, by_pass in hits.items() if 0 in by_pass}
        scores = {"accuracy": sum(v[0] for v in passes.values()) / len(passes) if passes else 0.0}
        if spec.circular:
            scores["circular_accuracy"] = mmbench.circular_accuracy(passes) if passes else 0.0
        return scores
    scorers = datasets.KINDS[spec.kind].scorers if spec.kind in datasets.KINDS else {}
    if not scorers:
        raise ValueError(f"task {task!r} ({spec.kind}) is not scored from its answers alone; rescore its "
                         f"eval_results.json predictions instead (tasks with a file scorer: "
                         f"{', '.join(sorted(n for n, t in datasets.TASKS.items() if t.kind in _SCORED))}).")
    scores = {}
    for name, scorer in scorers.items():
        values = [scorer(row["prediction"], Item(id=str(row["index"]), images=[], answers=row["answers"]), convention)
                  for row in rows]
        scores[name] = sum(values) / len(values) if values else 0.0
    return scores


_SCORED = {kind for kind, k in datasets.KINDS.items() if k.scorers or k.fmt == "choice"}


def main(argv: Sequence[str]) -> None:
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel

    values = flags.FLAGS
    try:
        scores = score_file(values.predictions, values.task, values.convention)
    except ValueError as e:
        sys.exit(f"error: {e}")
    for name, value in scores.items():
        print(f"{values.task}  {name}  {value:.4f}  ({values.convention})")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("predictions", None, "VLMEvalKit's table (.tsv) or lmms-eval's samples log (.jsonl).")
    flags.DEFINE_string("task", None, "The eval task whose scorers score it (mm1_jax.eval.datasets.TASKS).")
    flags.DEFINE_string("convention", "official", "official, lmms_eval or vlmevalkit.")
    flags.mark_flags_as_required(["predictions", "task"])
    app.run(main)
