"""MM1 (arXiv 2403.09611) Sec. 3.3, Fig. 5: the pre-training data — (a) caption vs interleaved share, (b) adding
text-only data, (c) the image:text ratio, (d) the synthetic VeCap captions.

Held fixed: MM1's ablation base (1.2B decoder, CLIP ViT-L/14 336 px, C-Abstractor 144 tokens), 200k steps [S].
Rows set `data.weights` over configs/mm1_pretrain.py's sources by name (weight 0 drops a source). The panels'
exact labels were read from memory of the figure, not verified; where a mixing ratio was not found it is stated.
"""
from configs.studies import _common as bm

ENC = "gs://YOUR_BUCKET/converted/encoders/clip_vit_l14_336_dfn5b_vecap"
LLM = "gs://YOUR_BUCKET/converted/decoders/llm_1b"
STUDY = dict(
    title="pre-training data: caption/interleaved/text mixture and synthetic captions",
    paper="MM1 (arXiv 2403.09611)", source="Fig. 5a-d",
    fixed="1.2B decoder, CLIP ViT-L/14 336 px, C-Abstractor 144 tokens",
)
STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py",
         overrides={"init.encoder": ENC, "init.decoder": LLM}),
    dict(name="eval", evaluate=True, shots=(0, 4, 8), limit=100_000),
)
BASE = "decoder=1b,encoder=clip_vit_l14_336"


def _mix(weights, **extra):
    return dict(arg=BASE, overrides={"data.weights": weights}, **extra)


ROWS = {
    # (a) caption share of caption + interleaved, no text-only data.
    "a_caption100": _mix("caption:100,interleaved:0,text:0"),
    "a_caption66": _mix("caption:66,interleaved:33,text:0"),
    "a_caption50": _mix("caption:50,interleaved:50,text:0"),
    "a_caption33": _mix("caption:33,interleaved:66,text:0"),
    "a_caption0": _mix("caption:0,interleaved:100,text:0"),
    # (b) text-only data added to captions or to interleaved documents (the ratio was not found: 1:1 here).
    "b_caption": _mix("caption:1,interleaved:0,text:0"),
    "b_caption_text": _mix("caption:1,interleaved:0,text:1", note="1:1 assumed"),
    "b_interleaved": _mix("caption:0,interleaved:1,text:0"),
    "b_interleaved_text": _mix("caption:0,interleaved:1,text:1", note="1:1 assumed"),
    # (c) caption : interleaved : text.
    "c_1_1_0": _mix("caption:1,interleaved:1,text:0"),
    "c_5_5_1": _mix("caption:5,interleaved:5,text:1"),
    "c_3_3_1": _mix("caption:3,interleaved:3,text:1"),
    "c_1_1_1": _mix("caption:1,interleaved:1,text:1"),
    # (d) with / without the synthetic VeCap captions (45/45/10 otherwise; VeCap is 7% of the caption data).
    "d_with_vecap": _mix("caption:41.85,vecap:3.15,interleaved:45,text:10"),
    "d_without_vecap": _mix("caption:45,vecap:0,interleaved:45,text:10"),
}

BENCHMARKS = {**bm.MM1_FEWSHOT, **bm.TEXTCORE}
METRICS = {
    **{f"{k}-shot": dict(mean=tuple(bm.MM1_FEWSHOT), shots=k) for k in (0, 4, 8)},
    "TextCore": dict(mean=("TextCore",), shots=0),
}
_NF = ("not found", "Fig. 5", "")
PAPER = {row: {m: _NF for m in METRICS} for row in ROWS}
PAPER["a_caption100"].update({"0-shot": (39.3, "Fig. 5a", "[S]"), "8-shot": (45.0, "Fig. 5a", "[S1]")})
PAPER["a_caption0"].update({"0-shot": (25.8, "Fig. 5a", "[S]")})
PAPER["a_caption50"].update({"0-shot": (33.4, "Fig. 5a", "[S1]"), "8-shot": (62.2, "Fig. 5a", "[S1]")})
_VECAP = ("+2.4 and +4 few-shot over d_without_vecap (which shot count each is not certain)", "Fig. 5d", "[S]")
PAPER["d_with_vecap"].update({"4-shot": _VECAP, "8-shot": _VECAP})
FINDINGS = (
    ("interleaved data is instrumental for few-shot and text-only performance; captioning data lifts zero-shot",
     "Sec. 3.3", "[P]"),
    ("text-only data helps few-shot and text-only performance", "Sec. 3.3", "[P]"),
    ("a careful mixture of image and text data gives strong multimodal results while keeping text performance",
     "Sec. 3.3", "[P]"),
    ("synthetic data helps few-shot learning", "Sec. 3.3", "[P]"),
    ("with >= 50% interleaved data, 8-shot > 61 and 4-shot > 58", "Fig. 5a", "[S]"),
    ("caption:interleaved:text 5:5:1 is best", "Fig. 5c", "[S]"),
    ("with VeCap: few-shot +2.4 and +4 (which shot counts each is not certain)", "Fig. 5d", "[S]"),
)


def _tiny(weights: str) -> dict:
    """A row at embedded scale: the same caption / interleaved / text shares over the embedded world's sources."""
    return dict(arg="main", overrides={"data.weights": f"{weights},vqa:0"})


# Embedded scale: panels (a) and (b) (the shares as above), 300 steps, scored 0- and 4-shot on captioning, VQA and a
# caption format only the demonstrations show, and on the text-only task.
EMBEDDED = dict(
    stages=(dict(name="pretrain", config="configs/tiny.py", overrides=bm.TINY_TRAIN),
            dict(name="eval", evaluate=True, shots=(0, 4), limit=100)),
    rows={row: _tiny(ROWS[row]["overrides"]["data.weights"]) for row in ROWS if row[0] in "ab"},
    benchmarks=dict(bm.TINY_FEWSHOT),
    metrics={"0-shot": dict(mean=("captioning", "VQA"), shots=0), "4-shot": dict(mean=("captioning", "VQA"), shots=4),
             "format 4-shot": dict(mean=("format from demonstrations",), shots=4),
             "TextCore": dict(mean=("TextCore",), shots=0)},
    figures=(dict(kind="bars", metrics=("0-shot", "4-shot", "format 4-shot", "TextCore"),
                  title="MM1 Fig. 5a-b in miniature: by data mixture", file="fig5.png"),),
)
FIGURES = (dict(kind="bars", metrics=("0-shot", "4-shot", "8-shot"), title="MM1 Fig. 5a-b: few-shot by data mixture",
                file="fig5.png"),)
