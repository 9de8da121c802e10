"""Benchmarks and fixed settings shared by the study files (this file is not a study itself).

Benchmark tables: benchmark name -> dict(
  task     the `mm1_jax.eval` task that scores it (`mm1_jax.eval.datasets.TASKS`, or a group such as textcore);
  metric   the score key that task writes ("task/Nshot/metric");
  scale    factor to the paper's unit (100: a 0-1 fraction -> percent; CIDEr-D is written on the x10 scale of
           pycocoevalcap, 1.0 = CIDEr 100); None where the paper's normalisation was not found;
  pending  True when no task scores it yet; `python -m mm1_jax.sweep plan` says so;
  files    config.eval fields the task reads, with placeholder paths for the user's copies of the release files;
  note     anything a reader needs to know.)
Every benchmark's task, score key and unit come from the task registry (`mm1_jax.eval.datasets.reported_score`, through
`mm1_jax.eval.suites.benchmark`); the papers' suites are `mm1_jax.eval.suites` (the eval CLI averages with them).
Fixed settings: the MM1.5 ablation stages (MM15_*) and the mPLUG-Owl3 ablation recipe (OWL3_*, QWEN15_7B).
"""
from mm1_jax.data import synthetic
from mm1_jax.data.synthetic import writers as synthetic_writers
from mm1_jax.eval import datasets, suites


def files(task: str) -> dict[str, str]:
    """Placeholder paths for a task's files (a group: its members'), named after the release's files."""
    if task in datasets.GROUPS:
        return {k: v for member in datasets.GROUPS[task] for k, v in files(member).items()}
    release = datasets.DATASETS[task][2]
    return {f"eval.{task}.{field}": f"gs://YOUR_BUCKET/eval/{task}/{name.split(' ')[0]}"
            for field, name in release.items()}


def study_table(table: dict) -> dict:
    """Benchmarks as the study files hold them: with `pending` and placeholder `files`."""
    out = {}
    for name, b in table.items():
        ready = b["task"] in datasets.RUNNABLE
        out[name] = dict(b, pending=not ready, **({"files": files(b["task"])} if ready else {}))
    return out


# MM1 (arXiv 2403.09611) pre-training ablations, Sec. 3: 0/4/8-shot on 3 captioning (CIDEr) and 5 VQA benchmarks;
# the reported number is their average at each shot count. TextCore (MM1 Fig. 5): commonly used text-only tasks.
MM1_FEWSHOT = study_table(suites.MM1_FEWSHOT)
TEXTCORE = study_table(suites.TEXTCORE)

# MM1 after SFT (arXiv 2403.09611 Sec. 5, Table 4's columns; the list of columns is unverified [S]).
MM1_SFT = study_table({
    "VQAv2": suites.MM1_FEWSHOT["VQAv2"],
    "TextVQA": suites.MM1_FEWSHOT["TextVQA"],
    "ScienceQA-IMG": suites.MM15_KNOWLEDGE["ScienceQA"],
    "MMMU": suites.MM15_KNOWLEDGE["MMMU"],
    "MathVista": suites.MM15_KNOWLEDGE["MathVista"],
    "MME": suites.MM15_GENERAL["MME"],
    "MMBench": suites.benchmark("mmbench"),
    "SEED": suites.benchmark("seed"),
    "POPE": suites.MM15_GENERAL["POPE"],
    "LLaVA-W": suites.MM15_GENERAL["LLaVA-W"],
    "MM-Vet": suites.MM15_GENERAL["MM-Vet"],
})

# MM1.5 (arXiv 2409.20566) scores every ablation after SFT by category averages; MMBase = mean(General, Text-rich,
# Knowledge). Category membership from secondary summaries [S].
MM15 = study_table({name: b for table in suites.MM15_CATEGORIES.values() for name, b in table.items()})
MM15_METRICS = {
    **{name: dict(mean=tuple(table), shots=0) for name, table in suites.MM15_CATEGORIES.items()},
    "MMBase": dict(mean=suites.MMBASE),
}

# mPLUG-Owl3 (arXiv 2408.04840v2) ablations, Sec. 4.4 Tables 8-10: single-image, video and multi-image columns.
OWL3_ABLATION = study_table({
    "GQA": suites.MM1_FEWSHOT["GQA"],
    "TextVQA": suites.benchmark("textvqa", note="with OCR tokens in the paper; ours without"),
    "MVBench": suites.benchmark("mvbench", note="video input, zero-shot"),
    "VideoMME": suites.benchmark("videomme", note="video input, zero-shot"),
    "NLVR2": suites.benchmark("nlvr2"),
    "Mantis-Eval": suites.benchmark("mantis"),
})
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


# --- the studies at embedded scale (`--scale=embedded`: configs/tiny.py on the embedded world, minutes per run on a
# CPU). One training recipe; rows keep their paper names so the paper's direction can be compared with ours.
TINY_TRAIN = {"train.steps": 300, "train.optimizer.warmup_steps": 30, "train.eval_every": 0, "train.num_samples": 0,
              "train.log_every": 50, "train.checkpoint.every_steps": 300}
# the embedded world's sources by role (mm1_jax.data.synthetic; every one is listed in configs/tiny.py:main, most
# at weight 0, so a stage picks its mixture with data.weights)
TINY_PRETRAIN = "caption:45,interleaved:37,text:8,vqa:0"
TINY_CPT = "caption:0,interleaved:0,text:0,vqa:0,ocr_pages:1"
TINY_SFT = ("caption:0,interleaved:0,text:0,vqa:20,ocr:8,grounding:8,doc_vqa:15,count_vqa:10,refer:8,math:7,"
            "multi_image:7,distractors:6,text_dialogue:6,knowledge:5")
TINY_FEWSHOT = {  # the MM1 few-shot ablations' roles in the embedded world
    "captioning": suites.benchmark("embedded_cap"),
    "VQA": suites.benchmark("embedded_vqa"),
    "format from demonstrations": suites.benchmark(
        "embedded_fewshot", note="each document's caption convention, shown only by the demonstrations"),
    "TextCore": suites.benchmark("embedded_text"),
}
TINY_MMBASE = {  # MM1.5's categories in the embedded world: general, text-rich, knowledge
    "General": suites.benchmark("embedded_vqa"),
    "Text-rich": suites.benchmark("embedded_docvqa"),
    "Knowledge": suites.benchmark("embedded_count", note="counting and position"),
}
# MM1.5's SFT categories in the embedded world (mm1_jax.data.synthetic.EMBEDDED_SFT_CATEGORIES; no code data): an SFT
# stage on configs/tiny.py:main turns the pre-training sources off and every SFT source on at its number of records
# (its share inside its category: sources of a category mix by size), its category named; data.sft.alpha and
# data.sft.groups then weigh the categories as MM1.5 does (mm1_jax.data.config.sft_mixture).
TINY_SFT_CATEGORIES = ",".join(f"{name}:{c}" for name, c in synthetic.EMBEDDED_SFT_CATEGORIES.items())
TINY_SFT_BY_SIZE = ",".join(["caption:0", "interleaved:0", "text:0"] + [
    f"{name}:{synthetic_writers.SIZES[name]}" for name in synthetic.EMBEDDED_SFT_CATEGORIES])
TINY_MM15 = {  # MM1.5's five categories in the embedded world, one or two embedded tasks each
    "embedded_vqa": suites.benchmark("embedded_vqa"),
    "embedded_ocr": suites.benchmark("embedded_ocr", note="a rendered word on a 64 px image"),
    "embedded_count": suites.benchmark("embedded_count", note="counting and position (the math data's skill)"),
    "embedded_text": suites.benchmark("embedded_text", note="shape facts by likelihood (the science data's)"),
    "embedded_grounding": suites.benchmark("embedded_grounding"),
    "embedded_multi": suites.benchmark("embedded_multi"),
}
# MM1.5-Video in the embedded world (configs/studies/mm15_video_ui.py): a video SFT stage on the world's clips alone
# (sft/video.json, 8 frames each), scored on held-out clips by likelihood over 4 options and in words, and on the
# image VQA questions (what video SFT may cost the image skills)
TINY_VIDEO_SFT = "caption:0,interleaved:0,text:0,vqa:0,video:1"
TINY_VIDEO = {
    "video (choice)": suites.benchmark("embedded_video", note="order, direction, count, colour change; 4 options"),
    "video (open)": suites.benchmark("embedded_video_open", note="the same questions answered in words"),
    "image VQA": suites.benchmark("embedded_vqa", note="the image questions (General)"),
}
TINY_VIDEO_METRICS = {name: dict(mean=(name,), shots=0) for name in TINY_VIDEO}
# MM1.5-UI in the embedded world: a UI SFT stage on the world's screens alone (sft/ui.json, Ferret-UI's release
# format), scored on held-out screens through Ferret-UI's reader and scorer (referring: exact match; grounding: a box
# at IoU >= 0.5; iphone = portrait, android = landscape screens)
TINY_UI_SFT = "caption:0,interleaved:0,text:0,vqa:0,ui:1"
TINY_UI = {
    "UI referring": suites.benchmark("embedded_ui_ref", note="widget type, icon, text of a box; chance 12"),
    "UI grounding": suites.benchmark("embedded_ui_grd", note="find a text, icon, widget: IoU >= 0.5; chance 6"),
}
TINY_UI_METRICS = {name: dict(mean=(name,), shots=0) for name in TINY_UI}
TINY_MM15_METRICS = {
    "General": dict(mean=("embedded_vqa",), shots=0),
    "Text-rich": dict(mean=("embedded_ocr",), shots=0),
    "Knowledge": dict(mean=("embedded_count", "embedded_text"), shots=0),
    "Refer&Ground": dict(mean=("embedded_grounding",), shots=0),
    "Multi-image": dict(mean=("embedded_multi",), shots=0),
    "MMBase": dict(mean=("General", "Text-rich", "Knowledge")),
}
