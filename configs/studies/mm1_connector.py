"""MM1 (arXiv 2403.09611) Sec. 3.2, Fig. 4: the vision-language connector — type (average pooling, attention
pooling, C-Abstractor) x image tokens (64, 144) x image resolution (224, 336 px): 12 rows.

Held fixed: a 1.2B decoder (our `1b` preset, 0.99B), CLIP ViT-L/14 on DFN-5B + VeCap, MM1's 45/45/10 mixture;
few-shot evaluation after pre-training. The bar heights of Fig. 4 were not found as numbers.
"""
from configs.studies import _common as bm

ENC = "gs://YOUR_BUCKET/converted/encoders/"
LLM = "gs://YOUR_BUCKET/converted/decoders/llm_1b"  # the user's pre-trained 1.2B LLM (MM1's is not released)

STUDY = dict(
    title="connector type x image tokens x resolution",
    paper="MM1 (arXiv 2403.09611)", source="Fig. 4",
    fixed="1.2B decoder, CLIP ViT-L/14 (DFN-5B + VeCap), 45/45/10 caption/interleaved/text",
)
STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", overrides={"init.decoder": LLM}),
    dict(name="eval", evaluate=True, shots=(0, 4, 8), limit=100_000),
)
ROWS = {
    f"{connector}_{tokens}tok_{px}px": dict(
        arg=f"decoder=1b,encoder=clip_vit_l14_{px},connector={connector},tokens={tokens}",
        overrides={"init.encoder": f"{ENC}clip_vit_l14_{px}_dfn5b_vecap"})
    for connector in ("avg_pool", "attn_pool", "c_abstractor") for tokens in (64, 144) for px in (224, 336)
}

BENCHMARKS = dict(bm.MM1_FEWSHOT)
METRICS = {f"{k}-shot": dict(mean=tuple(bm.MM1_FEWSHOT), shots=k) for k in (0, 4, 8)}
PAPER = {row: {m: ("not found", "Fig. 4", "") for m in METRICS} for row in ROWS}
FINDINGS = (
    ("the number of visual tokens and the image resolution matter most; the connector type has little effect",
     "Sec. 3.2", "[P]"),
    ("after SFT the connectors are very similar at 336 px / 144 tokens", "App. Fig. 10", "[P]"),
)

# Embedded scale: 64 -> 4 and 144 -> 16 image tokens, 224 -> 64 px and 336 -> 96 px (8 x 8 or 12 x 12 patches of
# 8 px); every connector at 64 px, the C-Abstractor also at 96 px (8 of the 12 rows, about an hour with 2 seeds).
_TINY_TOKENS, _TINY_PX = {64: 4, 144: 16}, {224: 64, 336: 96}
EMBEDDED = dict(
    stages=(dict(name="pretrain", config="configs/tiny.py", overrides=bm.TINY_TRAIN),
            dict(name="eval", evaluate=True, shots=(0, 4), limit=100)),
    rows={f"{connector}_{tokens}tok_{px}px": dict(arg="main", overrides={
              "model.connector.name": connector, "model.connector.num_tokens": _TINY_TOKENS[tokens],
              "model.encoder.image_size": _TINY_PX[px]})
          for connector in ("avg_pool", "attn_pool", "c_abstractor") for tokens in (64, 144) for px in (224, 336)
          if px == 224 or connector == "c_abstractor"},
    benchmarks={name: bm.TINY_FEWSHOT[name] for name in ("captioning", "VQA")},
    metrics={f"{k}-shot": dict(mean=("captioning", "VQA"), shots=k) for k in (0, 4)},
    figures=(dict(kind="bars", metrics=("0-shot", "4-shot"), title="MM1 Fig. 4 in miniature: connector x tokens x "
                  "resolution", file="fig4.png"),),
)
