"""MM1 (arXiv 2403.09611) Sec. 3.2, Table 1: the image encoder — pre-training objective, model size, resolution,
and its pre-training data (DFN-5B with or without the synthetic VeCap-300M captions).

Held fixed: a 2.9B decoder (our `3b` preset, 3.02B), a C-Abstractor with 144 tokens, MM1's 45/45/10 mixture;
few-shot evaluation after pre-training. The table is MM1's first (Sec. 3.2's encoder ablation, "MM1 pre-training
ablation across different image encoders"); the secondary summary the values come from calls it Table 3, which in
MM1 is the comparison of pre-trained models — the number cited here is our reading, the values are the summary's [S].
The encoder's own pre-training data is a property of its checkpoint:
`init.encoder` names the converted encoder a row starts from (placeholders: convert with `python -m mm1_jax.convert`).
"""
from configs.studies import _common as bm

ENC = "gs://YOUR_BUCKET/converted/encoders/"
LLM = "gs://YOUR_BUCKET/converted/decoders/llm_3b"  # MM1's LLMs are not released: the user's pre-trained 3B LLM

STUDY = dict(
    title="image encoder: objective, size, resolution, pre-training data",
    paper="MM1 (arXiv 2403.09611)", source="Table 1",
    fixed="2.9B decoder, C-Abstractor 144 tokens, 45/45/10 caption/interleaved/text",
)
STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", overrides={"init.decoder": LLM}),
    dict(name="eval", evaluate=True, shots=(0, 4, 8), limit=100_000),
)


def _row(encoder, checkpoint, **extra):
    return dict(arg=f"decoder=3b,encoder={encoder}", overrides={"init.encoder": ENC + checkpoint, **extra})


# ViT-H/14 at 224 px: the 336 px preset at 224 (same weights; position table resized on load).
_H224 = {"model.encoder.image_size": 224}
ROWS = {
    # AIM (autoregressive image models), 224 px, pre-trained on DFN-2B+.
    "aim_600m_224": _row("aim_600m_224", "aim-600M"),
    "aim_1b_224": _row("aim_1b_224", "aim-1B"),
    "aim_3b_224": _row("aim_3b_224", "aim-3B"),
    # CLIP on DFN-5B + VeCap-300M.
    "clip_l_224_vecap": _row("clip_vit_l14_224", "clip_vit_l14_224_dfn5b_vecap"),
    "clip_h_224_vecap": _row("clip_vit_h14_336", "clip_vit_h14_224_dfn5b_vecap", **_H224),
    "clip_l_336_vecap": _row("clip_vit_l14_336", "clip_vit_l14_336_dfn5b_vecap"),
    "clip_h_336_vecap": _row("clip_vit_h14_336", "clip_vit_h14_336_dfn5b_vecap"),
    # CLIP on DFN-5B only (apple/DFN5B-CLIP-ViT-H-14-378 is released).
    "clip_h_378_dfn5b": _row("clip_vit_h14_378", "DFN5B-CLIP-ViT-H-14-378"),
    # The DFN-5B-only counterparts of the VeCap rows, which the with/without-VeCap comparison needs.
    "clip_l_224_dfn5b": _row("clip_vit_l14_224", "clip_vit_l14_224_dfn5b"),
    "clip_h_224_dfn5b": _row("clip_vit_h14_336", "DFN5B-CLIP-ViT-H-14", **_H224),
    "clip_l_336_dfn5b": _row("clip_vit_l14_336", "clip_vit_l14_336_dfn5b"),
    "clip_h_336_dfn5b": _row("clip_vit_h14_336", "clip_vit_h14_336_dfn5b"),
}

BENCHMARKS = dict(bm.MM1_FEWSHOT)
METRICS = {f"{k}-shot": dict(mean=tuple(bm.MM1_FEWSHOT), shots=k) for k in (0, 4, 8)}


def _shots(zero, four, eight, tag="[S]"):
    return {"0-shot": (zero, "Table 1", tag), "4-shot": (four, "Table 1", tag), "8-shot": (eight, "Table 1", tag)}


PAPER = {
    "aim_600m_224": _shots(36.6, 56.6, 60.7),
    "aim_1b_224": _shots(37.9, 59.5, 63.3),
    "aim_3b_224": _shots(38.9, 60.9, 64.9),
    "clip_l_224_vecap": _shots(36.9, 58.7, 62.2),
    "clip_h_224_vecap": _shots(37.5, 60.0, 63.6),
    "clip_l_336_vecap": _shots(39.9, 62.4, 66.0),
    "clip_h_336_vecap": _shots(40.5, 62.6, 66.3),
    "clip_h_378_dfn5b": _shots(40.9, 62.5, 66.4),
    **{row: _shots("not found", "not found", "not found", tag="")
       for row in ("clip_l_224_dfn5b", "clip_h_224_dfn5b", "clip_l_336_dfn5b", "clip_h_336_dfn5b")},
}
FINDINGS = (
    ("resolution has the highest impact, followed by model size and training data composition", "Sec. 3.2", "[P]"),
    ("224 -> 336 px gives about +3%; ViT-L -> ViT-H under 1%; VeCap over 1% few-shot", "Table 1", "[S]"),
)
