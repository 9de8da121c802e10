"""Benchmarks and fixed settings shared by the study files (this file is not a study itself).

Benchmark tables: benchmark name -> dict(
  task     the `mm1_jax.eval` task that scores it (`mm1_jax.eval.tasks.TASKS`);
  metric   the score key that task writes ("task/Nshot/metric");
  scale    factor to the paper's unit (100: a 0-1 fraction -> percent; CIDEr-D is written on the x10 scale of
           pycocoevalcap, 1.0 = CIDEr 100); None where the paper's normalisation was not found;
  pending  True when the task is not in TASKS yet (the next issue's); `python -m mm1_jax.sweep plan` says so;
  files    config.eval fields the task reads, with placeholder paths for the user's copies;
  note     anything a reader needs to know.)
Fixed settings: the MM1.5 ablation stages (MM15_*) and the mPLUG-Owl3 ablation recipe (OWL3_*, QWEN15_7B).
"""

COCO_FILES = {"eval.coco_annotations": "gs://YOUR_BUCKET/eval/coco/captions_karpathy_test.json",
              "eval.coco_images": "gs://YOUR_BUCKET/eval/coco/val2014"}
VQAV2_FILES = {"eval.vqa_questions": "gs://YOUR_BUCKET/eval/vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
               "eval.vqa_annotations": "gs://YOUR_BUCKET/eval/vqav2/v2_mscoco_val2014_annotations.json",
               "eval.vqa_images": "gs://YOUR_BUCKET/eval/coco/val2014"}


def _pending(task, metric, scale=100, note=""):
    return dict(task=task, metric=metric, scale=scale, pending=True, note=note)


# MM1 (arXiv 2403.09611) pre-training ablations, Sec. 3: 0/4/8-shot on 3 captioning (CIDEr) and 5 VQA benchmarks;
# the reported number is their average at each shot count.
MM1_FEWSHOT = {
    "COCO": dict(task="coco_cap", metric="cider", scale=100, files=COCO_FILES),
    "NoCaps": _pending("nocaps", "cider"),
    "TextCaps": _pending("textcaps", "cider"),
    "VQAv2": dict(task="vqa", metric="vqa_accuracy", scale=100, files=VQAV2_FILES),
    "TextVQA": _pending("textvqa", "vqa_accuracy"),
    "VizWiz": _pending("vizwiz", "vqa_accuracy"),
    "GQA": _pending("gqa", "exact_match"),
    "OK-VQA": _pending("okvqa", "vqa_accuracy"),
}
# MM1 Fig. 5 also reports "TextCore", commonly used text-only tasks (ARC, PIQA, LAMBADA, ...); the full list was not
# found in the text we read.
TEXTCORE = {"TextCore": _pending("textcore", "accuracy", note="task list not found (ARC, PIQA, LAMBADA, ...)")}

# MM1 after SFT (arXiv 2403.09611 Sec. 5, Table 4's columns as we remember them; unverified).
MM1_SFT = {
    "VQAv2": dict(task="vqa", metric="vqa_accuracy", scale=100, files=VQAV2_FILES),
    "TextVQA": _pending("textvqa", "vqa_accuracy"),
    "ScienceQA-IMG": _pending("scienceqa", "accuracy"),
    "MMMU": _pending("mmmu", "accuracy"),
    "MathVista": _pending("mathvista", "accuracy"),
    "MME": _pending("mme", "score", scale=None, note="a sum of sub-scores; its normalisation in averages not found"),
    "MMBench": _pending("mmbench", "circular_accuracy"),
    "SEED": _pending("seed", "accuracy"),
    "POPE": _pending("pope", "f1"),
    "LLaVA-W": _pending("llava_w", "gpt_score", note="judged by GPT-4"),
    "MM-Vet": _pending("mmvet", "gpt_score", note="judged by GPT-4"),
}

# MM1.5 (arXiv 2409.20566) scores every ablation after SFT by category averages; MMBase = mean(General, Text-rich,
# Knowledge). Category membership from secondary summaries [S].
MM15_GENERAL = {
    "MME": MM1_SFT["MME"],
    "SEED-IMG": _pending("seed_img", "accuracy"),
    "POPE": MM1_SFT["POPE"],
    "LLaVA-W": MM1_SFT["LLaVA-W"],
    "MM-Vet": MM1_SFT["MM-Vet"],
    "RealWorldQA": _pending("realworldqa", "accuracy"),
}
MM15_TEXT_RICH = {
    "WTQ": _pending("wtq", "accuracy"),
    "TabFact": _pending("tabfact", "accuracy"),
    "OCRBench": _pending("ocrbench", "score", scale=0.1, note="out of 1000"),
    "ChartQA": _pending("chartqa", "relaxed_accuracy"),
    "TextVQA": _pending("textvqa", "vqa_accuracy"),
    "DocVQA": _pending("docvqa", "anls"),
    "InfoVQA": _pending("infovqa", "anls"),
}
MM15_KNOWLEDGE = {
    "AI2D": _pending("ai2d", "accuracy"),
    "ScienceQA": _pending("scienceqa", "accuracy"),
    "MathVista": _pending("mathvista", "accuracy"),
    "MMMU": _pending("mmmu", "accuracy"),
}
MM15_REFER_GROUND = {
    "RefCOCO": _pending("refcoco", "box_iou50", note="the RefCOCO family (RefCOCO, RefCOCO+, RefCOCOg)"),
    "Flickr30k-Entities": _pending("flickr30k_entities", "recall_at_1"),
    "LVIS-Ref": _pending("lvis_ref", "accuracy"),
    "Ferret-Bench": _pending("ferret_bench", "gpt_score", note="judged by GPT-4"),
}
MM15_MULTI_IMAGE = {
    "QBench2": _pending("qbench2", "accuracy"),
    "Mantis": _pending("mantis", "accuracy"),
    "NLVR2": _pending("nlvr2", "accuracy"),
    "BLINK": _pending("blink", "accuracy"),
    "MVBench": _pending("mvbench", "accuracy", note="video input"),
    "MuirBench": _pending("muirbench", "accuracy"),
}
MM15 = {**MM15_GENERAL, **MM15_TEXT_RICH, **MM15_KNOWLEDGE, **MM15_REFER_GROUND, **MM15_MULTI_IMAGE}
MM15_METRICS = {
    "General": dict(mean=tuple(MM15_GENERAL), shots=0),
    "Text-rich": dict(mean=tuple(MM15_TEXT_RICH), shots=0),
    "Knowledge": dict(mean=tuple(MM15_KNOWLEDGE), shots=0),
    "Refer&Ground": dict(mean=tuple(MM15_REFER_GROUND), shots=0),
    "Multi-image": dict(mean=tuple(MM15_MULTI_IMAGE), shots=0),
    "MMBase": dict(mean=("General", "Text-rich", "Knowledge")),
}

# mPLUG-Owl3 (arXiv 2408.04840v2) ablations, Sec. 4.4 Tables 8-10: single-image, video and multi-image columns.
OWL3_ABLATION = {
    "GQA": _pending("gqa", "exact_match"),
    "TextVQA": _pending("textvqa", "vqa_accuracy", note="with OCR tokens"),
    "MVBench": _pending("mvbench", "accuracy", note="video input, zero-shot"),
    "VideoMME": _pending("videomme", "accuracy", note="video input, zero-shot"),
    "NLVR2": _pending("nlvr2", "accuracy"),
    "Mantis-Eval": _pending("mantis", "accuracy"),
}
OWL3_METRICS = {name: dict(mean=(name,), shots=0) for name in OWL3_ABLATION}

# MM1.5 (arXiv 2409.20566) ablation set-up [S]: a 3B dense model; static splitting (4 sub-images + an overview,
# each 672 px, 144 tokens; only samples with fewer than 3 images); pre-training choices scored after SFT
# (configs/mm15_sft.py, its dynamic splitting replaced by the static one, evaluation splitting as training did).
MM15_ENCODER = "gs://YOUR_BUCKET/converted/encoders/DFN5B-CLIP-ViT-H-14-378"
MM15_LLM = "gs://YOUR_BUCKET/converted/decoders/llm_3b"  # the user's pre-trained 3B LLM
MM15_STATIC_672 = {"model.encoder.image_size": 672, "data.split.mode": "mm1"}  # 2x2 crops of 672 px + overview
MM15_ABLATION_STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", overrides={"init.encoder": MM15_ENCODER,
                                                                       "init.decoder": MM15_LLM}),
    dict(name="cpt", config="configs/mm15_continual.py", overrides=MM15_STATIC_672),
    dict(name="sft", config="configs/mm15_sft.py", overrides=MM15_STATIC_672),
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)


def shared(stages, *names):
    """`stages` with the named ones run once for all rows (`shared=True`)."""
    return tuple(dict(s, shared=True) if s["name"] in names else s for s in stages)


# mPLUG-Owl3 (arXiv 2408.04840v2) Sec. 4.4 ablations: the LLaVA-1.5 recipe and data with Qwen1.5-7B [P]. LLaVA-1.5:
# stage 1 on 558K caption pairs (1 epoch, batch 256, LR 1e-3), stage 2 on the 665K instruction mixture (1 epoch,
# batch 128, LR 2e-5), warm-up 3%, cosine to 0, the encoder frozen. The ablation's encoder is not stated in the text
# we read: mPLUG-Owl3's SigLIP-400m is assumed; its projector is the connector 'mlp' (729 tokens per image).
OWL3_ARG = "decoder=7b,encoder=siglip_so400m14_384,connector=mlp,tokens=729"
QWEN15_7B = {  # Qwen/Qwen1.5-7B config.json on the 7b preset
    "model.decoder.vocab_size": 151936, "model.decoder.num_kv_heads": 32, "model.decoder.mlp_dim": 11008,
    "model.decoder.qkv_bias": True, "model.decoder.rope_theta": 1_000_000.0, "model.decoder.norm_eps": 1e-6,
}
# Stage 1 trains the projector; with hyper attention also the hyper layers' visual K/V projections and gate (as
# mPLUG-Owl3's own stage 1, v2 Table 2).
OWL3_STAGE1_CONNECTOR = ("connector",)
OWL3_STAGE1_HYPER = ("connector", "decoder/*/attn/image_*", "decoder/*/attn/gate_proj/*")
OWL3_STAGES = (
    dict(name="pretrain", config="configs/mm1_pretrain.py", overrides={
        "init.encoder": "gs://YOUR_BUCKET/converted/encoders/siglip-so400m-patch14-384",
        "init.decoder": "gs://YOUR_BUCKET/converted/decoders/Qwen1.5-7B",
        "data.weights": "caption:1,interleaved:0,text:0", "data.seq_len": 2048,
        "train.steps": 2180, "train.global_batch_size": 256, "train.optimizer.lr_rule": "fixed",
        "train.optimizer.lr": 1e-3, "train.optimizer.warmup_steps": 65, "train.optimizer.final_lr_fraction": 0.0,
        "train.optimizer.weight_decay": 0.0}),
    dict(name="sft", config="configs/mm1_sft.py", overrides={
        "model.encoder.image_size": 384, "data.split.mode": "none", "train.trainable": ("connector", "decoder"),
        "train.steps": 5200, "train.global_batch_size": 128, "train.optimizer.name": "adamw",
        "train.optimizer.lr": 2e-5, "train.optimizer.warmup_steps": 156, "train.optimizer.final_lr_fraction": 0.0}),
    dict(name="eval", evaluate=True, shots=(0,), limit=100_000),
)
