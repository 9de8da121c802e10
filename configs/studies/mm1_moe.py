"""MM1 (arXiv 2403.09611) Sec. 4: mixture-of-experts decoders against the dense ones they extend.

3B-MoE: 64 experts in every 2nd layer (~64B total); 7B-MoE: 32 experts in every 4th layer (~47B total); top-2
routing, load-balance loss 0.01, router z-loss 0.001, experts in the FFNs only [S]. Each row is pre-trained with the
final recipe (ViT-H/14 378 px, C-Abstractor 144 tokens, 45/45/10), fine-tuned, then scored on the SFT benchmarks.
The paper's numbers for this comparison were not found in the text we read. One secondary summary gives dense vs
MoE after SFT (VQAv2 82.0 / 82.5 at 3B, 82.8 / 83.4 at 7B; MM-Vet 43.7 / 42.2, 42.1 / 45.2), but a public leaderboard
lists MM-Vet 43.7 for MM1.5-3B-MoE and 42.2 for MM1.5-7B, two of the same numbers: they may be MM1.5's. No second
source confirms them as MM1's, so they are not entered (a [S] value needs that confirmation).
"""
from configs.studies import _common as bm

ENC = "gs://YOUR_BUCKET/converted/encoders/DFN5B-CLIP-ViT-H-14-378"

STUDY = dict(
    title="mixture-of-experts vs dense decoders (3B, 7B)",
    paper="MM1 (arXiv 2403.09611)", source="Sec. 4 and the SFT results table",
    fixed="final recipe: ViT-H/14 378 px, C-Abstractor 144 tokens, 45/45/10; SFT with 2x2 crops + overview",
)
STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", overrides={"init.encoder": ENC}),
    dict(name="sft", config="configs/mm1_sft.py"),
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)
LLM = "gs://YOUR_BUCKET/converted/decoders/"  # the user's pre-trained LLMs (MM1's are not released)
ROWS = {
    "dense_3b": dict(arg="decoder=3b", stage_overrides={"pretrain": {"init.decoder": LLM + "llm_3b"}}),
    "moe_3b": dict(arg="decoder=3b-moe", stage_overrides={"pretrain": {"init.decoder": LLM + "llm_3b_moe"}},
                   note="upcycle the dense 3B LLM with mm1_jax.models.moe.upcycle (or train the MoE LLM)"),
    "dense_7b": dict(arg="decoder=7b", stage_overrides={"pretrain": {"init.decoder": LLM + "llm_7b"}}),
    "moe_7b": dict(arg="decoder=7b-moe", stage_overrides={"pretrain": {"init.decoder": LLM + "llm_7b_moe"}}),
}
BENCHMARKS = dict(bm.MM1_SFT)
METRICS = {name: dict(mean=(name,), shots=0) for name in BENCHMARKS}
PAPER = {row: {m: ("not found", "SFT comparison table", "") for m in METRICS} for row in ROWS}
