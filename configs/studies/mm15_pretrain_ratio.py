"""MM1.5 (arXiv 2409.20566) Sec. 3, Fig. 10: the pre-training mixture — MM1's caption:interleaved:text 45:45:10
against 50:10:40 with the text-only data replaced by high-quality text (HQ-Text); 200k steps, sequence 4096; each
row then continues at 1344 px on OCR data, is fine-tuned, and is scored by category.

The paper goes in two steps: first the text-only data is replaced by HQ-Text at MM1's 45:45:10 (`45_45_10_hq_text`),
then the ratio moves to 50:10:40 (`50_10_40_hq_text`); it reports deltas of the last over 45:45:10 [S]; the middle
step's numbers were not found. `50_10_40_same_text` is not a paper row: the ratio change with the original text
source.
"""
from configs.studies import _common as bm

STUDY = dict(
    title="pre-training mixture 45:45:10 vs 50:10:40 with HQ-Text",
    paper="MM1.5 (arXiv 2409.20566)", source="Fig. 10",
    fixed="3B decoder; CPT at 1344 px on OCR data; SFT with static splitting",
)
STAGES = bm.MM15_ABLATION_STAGES
ROWS = {
    "45_45_10": dict(arg="decoder=3b", stage_overrides={
        "pretrain": {"data.weights": "caption:45,interleaved:45,text:10"}}),
    "45_45_10_hq_text": dict(arg="decoder=3b", stage_overrides={
        "pretrain": {"data.weights": "caption:45,interleaved:45,text:0,hq_text:10"}}),
    "50_10_40_hq_text": dict(arg="decoder=3b", stage_overrides={
        "pretrain": {"data.weights": "caption:50,interleaved:10,text:0,hq_text:40"}}),
    "50_10_40_same_text": dict(arg="decoder=3b", stage_overrides={
        "pretrain": {"data.weights": "caption:50,interleaved:10,text:40"}}, note="not a paper row"),
}
BENCHMARKS = dict(bm.MM15)
METRICS = dict(bm.MM15_METRICS)


def _delta(x):
    return (dict(delta=x, vs="45_45_10"), "Fig. 10", "[S]")


PAPER = {
    "45_45_10": {m: ("not found", "Fig. 10", "") for m in METRICS},
    "50_10_40_hq_text": {"Text-rich": _delta(0.85), "Knowledge": _delta(0.99), "Refer&Ground": _delta(1.4),
                         "Multi-image": _delta(-0.05)},
    "45_45_10_hq_text": {m: ("not found", "Fig. 10", "") for m in METRICS},
    "50_10_40_same_text": {m: ("not in the paper", "ours (Fig. 10 changes the text source too)", "") for m in METRICS},
}
