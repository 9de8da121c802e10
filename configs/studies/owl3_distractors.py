"""mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.5, Fig. 4: distractor resistance — an MMBench-dev question about one image
among N (N-1 random dev images as distractors), prompted as `Image 1: <|image|> Image 2: <|image|> ... Image N:
<|image|>. In Image X, {question}`, scored with CircularEval (every option order and distractor set must be right).

Evaluation of the released mPLUG-Owl3 (converted with `python -m mm1_jax.convert`; rows `n_N`, stage `eval`) beside
the paper's concatenation-route comparison, the released LLaVA-NeXT-Interleave (llava-hf/llava-interleave-qwen-7b-hf,
converted the same way; rows `concat_n_N`, stage `eval_concat`, configs/llava_eval.py: every image 729 tokens of the
sequence, prompted with the release's chat template and `Image 1: <image> ...`, the context sized for N images). The
paper's concatenation model stops at N = 50: its rows beyond are ours. At embedded scale both routes are trained: the tiny model with images as tokens in the sequence
(concatenation) or read by a hyper-attention layer (mPLUG-Owl3's route), on the same data (distractor questions with
2-6 images among the SFT sources), then asked the embedded colour questions among N - 1 distractor images.
"""
from configs.studies import _common as bm
from mm1_jax.eval import suites

STUDY = dict(
    title="distractor resistance: MMBench-dev with N-1 distractor images",
    paper="mPLUG-Owl3 (arXiv 2408.04840v2)", source="Sec. 4.5, Fig. 4",
    fixed="the released mPLUG-Owl3-7B; CircularEval",
)
STAGES = (
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000, config="configs/owl3_eval.py",
         checkpoint="gs://YOUR_BUCKET/converted/mPLUG-Owl3-7B-240728"),
    dict(name="eval_concat", evaluate=True, shots=(0,), limit=100_000, config="configs/llava_eval.py",
         checkpoint="gs://YOUR_BUCKET/converted/llava-interleave-qwen-7b-hf"),
)
NS = (1, 5, 10, 20, 50, 100, 200, 400)
CONCAT_TOKENS_PER_IMAGE = 729  # LLaVA-NeXT-Interleave: 27 x 27 SigLIP features per 384 px image, no newline


def _concat_seq_len(n: int) -> int:
    """The context the concatenation route needs at N images: their features and room for MMBench's text."""
    return max(32768, CONCAT_TOKENS_PER_IMAGE * n + 4096)


ROWS = {
    **{f"n_{n}": dict(arg="gs://YOUR_BUCKET/mPLUG-Owl3-7B-240728/tokenizer.json", skip=("eval_concat",),
                      overrides={"eval.mmbench_distractors.num_images": n}) for n in NS},
    **{f"concat_n_{n}": dict(arg="gs://YOUR_BUCKET/llava-interleave-qwen-7b-hf/tokenizer.json", skip=("eval",),
                             overrides={"eval.mmbench_distractors.num_images": n, "data.seq_len": _concat_seq_len(n)})
       for n in NS},
}
BENCHMARKS = bm.study_table({"MMBench-distractors": suites.benchmark("mmbench_distractors")})
METRICS = {"CircularEval": dict(mean=("MMBench-distractors",), shots=0)}
PAPER = {row: {"CircularEval": ("not found", "Fig. 4", "")} for row in ROWS}
for _n in (n for n in NS if n > 50):  # the paper's concatenation model stops at N = 50: these rows are ours
    PAPER[f"concat_n_{_n}"]["CircularEval"] = ("not in the paper", "Sec. 4.5 (its concatenation model stops at N = 50)",
                                               "")
PAPER["n_50"]["CircularEval"] = (43.09, "Sec. 4.5", "[P]")
PAPER["n_400"]["CircularEval"] = (28.58, "Sec. 4.5", "[P]")
PAPER["concat_n_20"]["CircularEval"] = (43.18, "Sec. 4.5, LLaVA-Next-Interleave", "[P]")
PAPER["concat_n_50"]["CircularEval"] = (12.52, "Sec. 4.5, LLaVA-Next-Interleave", "[P]")
FINDINGS = (
    ("hyper attention (mPLUG-Owl3) keeps 43.09 at N=50 and 28.58 at N=400; the concatenation model "
     "LLaVA-Next-Interleave falls from 43.18 at N=20 to 12.52 at N=50; Mantis fails at N=100", "Sec. 4.5", "[P]"),
)
_ROUTE_LABEL = {"n": "hyper attention", "concat_n": "concatenation"}
FIGURES = (dict(kind="line", metric="CircularEval", x={r: int(r.rsplit("_", 1)[1]) for r in ROWS}, logx=True,
                series={r: _ROUTE_LABEL[r.rsplit("_", 1)[0]] for r in ROWS}, xlabel="images in the prompt (N)",
                title="mPLUG-Owl3 Sec. 4.5: CircularEval with N - 1 distractor images", file="distractors.png"),)

# Embedded scale: both routes trained the same way (pre-training, then the SFT mixture, which holds the distractor
# questions with 2-6 images), each once per seed and shared by its N rows; then the embedded colour questions (50
# items, 3 options, every rotation) among N - 1 distractor images. The hyper route reads images in decoder layer 1
# (of 3) with one placeholder token each; concatenation puts each image's 16 tokens in the sequence.
_TINY_N = (1, 5, 10, 20, 50)
_ROUTE = {"n": {"model.decoder.hyper_layers": (1,)}, "concat_n": {}}
# Scored with room for 64 images and 1024 tokens (trained on 256-token rows): concatenation's N = 50 prompt is 970
# tokens (16 per image), beyond its training length as a real model's would be; the hyper route's is 220.
_TINY_EVAL = {"data.seq_len": 1024, "data.max_images": 64, "model.max_images": 64}
EMBEDDED = dict(
    stages=(
        dict(name="pretrain", config="configs/tiny.py", shared=True,
             overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_PRETRAIN}),
        dict(name="sft", config="configs/tiny.py", shared=True,
             overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_SFT}),
        dict(name="eval", evaluate=True, shots=(0,), limit=50, overrides=_TINY_EVAL),
    ),
    rows={f"{route}_{n}": dict(arg="main", overrides=_ROUTE[route],
                               stage_overrides={"eval": {"eval.embedded_distractors.num_images": n}})
          for route in _ROUTE for n in _TINY_N},
    benchmarks={"distractors": suites.benchmark("embedded_distractors",
                                                note="the embedded colour questions among N - 1 distractor images")},
    metrics={"CircularEval": dict(mean=("distractors",), shots=0)},
)
