"""mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.5, Fig. 4: distractor resistance — an MMBench-dev question about one image
among N (N-1 random dev images as distractors), prompted as `Image 1: <|image|> Image 2: <|image|> ... Image N:
<|image|>. In Image X, {question}`, scored with CircularEval (every option order and distractor set must be right).

Evaluation only, of the released mPLUG-Owl3 (converted with `python -m mm1_jax.convert`). `embedded_multi` is this
protocol in miniature (4 images) on the embedded data.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="distractor resistance: MMBench-dev with N-1 distractor images",
    paper="mPLUG-Owl3 (arXiv 2408.04840v2)", source="Sec. 4.5, Fig. 4",
    fixed="the released mPLUG-Owl3-7B; CircularEval",
)
STAGES = (
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000, config="configs/owl3_eval.py",
         checkpoint="gs://YOUR_BUCKET/converted/mPLUG-Owl3-7B-240728"),
)
NS = (1, 5, 10, 20, 50, 100, 200, 400)
ROWS = {f"n_{n}": dict(arg="gs://YOUR_BUCKET/mPLUG-Owl3-7B-240728/tokenizer.json",
                       overrides={"eval.mmbench_distractors.num_images": n}) for n in NS}
BENCHMARKS = bm.study_table({"MMBench-distractors": dict(task="mmbench_distractors", metric="circular_accuracy",
                                                         scale=100, note="")})
METRICS = {"CircularEval": dict(mean=("MMBench-distractors",), shots=0)}
PAPER = {row: {"CircularEval": ("not found", "Fig. 4", "[P]")} for row in ROWS}
PAPER["n_50"]["CircularEval"] = (43.09, "Sec. 4.5", "[P]")
PAPER["n_400"]["CircularEval"] = (28.58, "Sec. 4.5", "[P]")
FINDINGS = (
    ("LLaVA-Next-Interleave: 43.18 at N=20, 12.52 at N=50; Mantis fails at N=100", "Sec. 4.5", "[P]"),
)
