"""MM1 (arXiv 2403.09611) App. Fig. 10: the vision-language connectors compared after SFT — average pooling,
attention pooling and the C-Abstractor at 336 px and 144 image tokens, each pre-trained (as in Fig. 4's study,
`mm1_connector`) then fine-tuned and scored on the SFT benchmarks.

Held fixed: a 1.2B decoder (our `1b` preset), CLIP ViT-L/14 on DFN-5B + VeCap, MM1's 45/45/10 pre-training mixture,
then MM1's SFT recipe (configs/mm1_sft.py: 2x2 crops + overview of 672 px). The paper states the connectors are "very
similar" after SFT; its bar heights were not found as numbers.
"""
from configs.studies import _common as bm

ENC = "gs://YOUR_BUCKET/converted/encoders/clip_vit_l14_336_dfn5b_vecap"
LLM = "gs://YOUR_BUCKET/converted/decoders/llm_1b"  # the user's pre-trained 1.2B LLM (MM1's is not released)

STUDY = dict(
    title="connector type after SFT (336 px, 144 tokens)",
    paper="MM1 (arXiv 2403.09611)", source="App. Fig. 10",
    fixed="1.2B decoder, CLIP ViT-L/14 336 px (DFN-5B + VeCap), 144 tokens; MM1's SFT recipe",
)
STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", overrides={"init.decoder": LLM, "init.encoder": ENC}),
    dict(name="sft", config="configs/mm1_sft.py"),
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)
CONNECTORS = ("avg_pool", "attn_pool", "c_abstractor")
ROWS = {f"sft_{c}": dict(arg=f"decoder=1b,encoder=clip_vit_l14_336,connector={c},tokens=144") for c in CONNECTORS}
BENCHMARKS = dict(bm.MM1_SFT)
METRICS = {"SFT average": dict(mean=tuple(b for b in BENCHMARKS if BENCHMARKS[b].get("scale")), shots=0)}
PAPER = {row: {"SFT average": ("not found", "App. Fig. 10", "")} for row in ROWS}
FINDINGS = (("after SFT the connectors are very similar at 336 px / 144 tokens", "App. Fig. 10", "[P]"),)

# Embedded scale: 144 -> 16 image tokens at 96 px (12 x 12 patches), each connector pre-trained then fine-tuned on the
# embedded SFT mixture, scored on the embedded world's general / text-rich / knowledge tasks.
EMBEDDED = dict(
    stages=(dict(name="pretrain", config="configs/tiny.py",
                 overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_PRETRAIN}),
            dict(name="sft", config="configs/tiny.py", overrides={**bm.TINY_TRAIN, "data.weights": bm.TINY_SFT}),
            dict(name="eval", evaluate=True, shots=(0,), limit=100)),
    rows={f"sft_{c}": dict(arg="main", overrides={"model.connector.name": c, "model.connector.num_tokens": 16,
                                                   "model.encoder.image_size": 96}) for c in CONNECTORS},
    benchmarks=dict(bm.TINY_MMBASE),
    metrics={"SFT average": dict(mean=tuple(bm.TINY_MMBASE), shots=0)},
)
