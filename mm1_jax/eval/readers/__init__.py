"""Readers for the papers' evaluation benchmarks, each reading the benchmark's official release files, and the COCO
results writer; one module per benchmark family, the shared machinery in `common`. A new benchmark gets its reader
in its family's module (or a new one) and is exported here.

Every reader is `read_X(task, *, <files...>) -> (items, skipped)`; `task` is the eval task name and the keyword
names are the task's `config.eval.<task>.<keyword>` fields.

  module      reader                release files
  captions    read_captions         COCO captions JSON (COCO Karpathy / val2014, NoCaps) or TextCaps' {"data": [...]}
  vqa         read_vqa              VQAv2 / OK-VQA questions + annotations JSON (answers optional: predictions only)
              read_vizwiz           VizWiz-VQA val.json, a list of {"image", "question", "answers": [{"answer"}]}
              read_textvqa          TextVQA_0.5.1_val.json, {"data": [{"question_id", "image_id", "question", ...}]}
              read_gqa              GQA *_balanced_questions.json, {question_id: {"imageId", "question", "answer"}}
  text_rich   read_docvqa           DocVQA val_v1.0.json / InfoVQA infographicsVQA_val_v1.0.json, {"data": [...]}
              read_chartqa          ChartQA test_human.json / test_augmented.json, [{"imgname", "query", "label"}]
  refexp      read_refcoco          the refer release: refs(unc).p (a pickle) + instances.json (COCO instances)
  choice      read_mmbench          MMBench TSV (MMBench_DEV_EN.tsv), images base64 in the "image" column
              read_scienceqa        ScienceQA problems.json, {pid: {"question", "choices", "answer", "hint", ...}}
              read_ai2d             AI2D questions/ folder of <image>.json files (+ an optional test id list)
              read_multiple_choice  our jsonl, one {"id", "question", "options", "answer", "image"?} a line
  general     read_mme              MME: the release's MME_Benchmark folder, or VLMEvalKit's MME.tsv
              read_pope             POPE: coco_pope_{random,popular,adversarial}.json (a folder or one file), POPE.tsv
              read_seed_bench       SEED-Bench.json (image question types 1-9), or SEEDBench_IMG.tsv
              read_realworldqa      RealWorldQA's parquet files (the hub's data/), or RealWorldQA.tsv
  judged      read_llava_w          LLaVA-Bench (In-the-Wild): questions.jsonl, context.jsonl, answers_gpt4.jsonl
              read_mmvet            MM-Vet: mm-vet.json + images/
              read_ferret_bench     Ferret-Bench: ml-ferret's ferret_gpt4_data/ (three categories) + COCO val2017
  knowledge   read_mmmu             MMMU: <subject>/<split>-*.parquet (the hub's), or MMMU_DEV_VAL.tsv
              read_mathvista        MathVista testmini.json (+ query.json), or MathVista_MINI.tsv
  multi_image read_qbench2           Q-Bench2 A1 pairs: Q-Bench2-HF parquet, or the release's jsonl + images
              read_mantis           Mantis-Eval parquet (or Mantis' JSON list)
              read_nlvr2            NLVR2's dev.json / test1.json (JSON lines) + the split's images
              read_blink            BLINK: <Subtask>/<split>-*.parquet, or BLINK.tsv
              read_muirbench        MuirBench: data/test-*.parquet, or MUIRBench.tsv
  ocr         read_ocrbench         OCRBench.json + OCRBench_Images, or OCRBench.tsv
  tables      read_wtq              WTQ on table images: TableVQA-Bench's TSV (vwtq), or DocOwl's jsonl
              read_tabfact          TabFact on table images: TableVQA-Bench's TSV (vtabfact), or DocOwl's jsonl
  grounding   read_flickr30k_entities  Flickr30k Entities: the release's Sentences/ + Annotations/ (+ MDETR's JSON)
              read_lvis_ref         LVIS-Ref: Ferret's referring records (jsonl) + COCO val2017
  lmudata     (no reader)           VLMEvalKit's LMUData TSV format (base64 images, shared by index), `LmuTable`
  video       read_nextqa           NExT-QA val.csv + map_vid_vidorID.json + videos (meta["video"]: frames at run time)
              read_intentqa         IntentQA test.csv + its videos (or NExT-QA's map and folders)
              read_videomme         Video-MME parquet / JSON + videos
              read_mvbench          MVBench json/ (20 tasks) + video/
              read_egoschema        EgoSchema questions.json + subset_answers.json + videos
              read_activitynet_qa   ActivityNet-QA test_q.json + test_a.json + videos (judged)
  ui          read_ferret_ui        Ferret-UI's evaluation records (its JSON lists: referring, grounding, screen tasks)
  text        read_arc              TextCore's text-only tasks: ARC jsonl,
              read_piqa             PIQA jsonl + labels (one 0 / 1 a line),
              read_lambada          LAMBADA jsonl
  common      (no reader)           what every reader shares: errors, file loading, record checks, `Collect`

Problems with a file (missing, unparsable, the wrong top-level schema) raise one ValueError naming the task and
the file. Problems with one record (a missing field, an answer out of range, an image file that does not exist)
skip that record: it is returned in `skipped` as {"id", "reason": "<file>: <record>: <what is wrong>"} and the
others are kept. Image files are only checked for existence here; they are decoded later.
"""
from mm1_jax.eval.readers.captions import read_captions, write_coco_results
from mm1_jax.eval.readers.choice import read_ai2d, read_mmbench, read_multiple_choice, read_scienceqa
from mm1_jax.eval.readers.general import read_mme, read_pope, read_realworldqa, read_seed_bench
from mm1_jax.eval.readers.grounding import read_flickr30k_entities, read_lvis_ref
from mm1_jax.eval.readers.judged import read_ferret_bench, read_llava_w, read_mmvet
from mm1_jax.eval.readers.knowledge import read_mathvista, read_mmmu
from mm1_jax.eval.readers.multi_image import read_blink, read_mantis, read_muirbench, read_nlvr2, read_qbench2
from mm1_jax.eval.readers.ocr import read_ocrbench
from mm1_jax.eval.readers.refexp import read_refcoco
from mm1_jax.eval.readers.text import read_arc, read_lambada, read_piqa
from mm1_jax.eval.readers.tables import read_tabfact, read_wtq
from mm1_jax.eval.readers.text_rich import read_chartqa, read_docvqa
from mm1_jax.eval.readers.ui import read_ferret_ui
from mm1_jax.eval.readers.video import (read_activitynet_qa, read_egoschema, read_intentqa, read_mvbench,
                                        read_nextqa, read_videomme)
from mm1_jax.eval.readers.vqa import read_gqa, read_textvqa, read_vizwiz, read_vqa

__all__ = ["read_activitynet_qa", "read_ai2d", "read_arc", "read_blink", "read_captions", "read_chartqa",
           "read_docvqa", "read_egoschema", "read_ferret_bench", "read_ferret_ui", "read_flickr30k_entities",
           "read_gqa", "read_intentqa", "read_lambada", "read_llava_w", "read_lvis_ref", "read_mantis",
           "read_mathvista", "read_mmbench", "read_mme", "read_mmmu", "read_mmvet", "read_muirbench",
           "read_multiple_choice", "read_mvbench", "read_nextqa", "read_nlvr2", "read_ocrbench", "read_piqa",
           "read_pope", "read_qbench2", "read_realworldqa", "read_refcoco", "read_scienceqa", "read_seed_bench",
           "read_tabfact", "read_textvqa", "read_videomme", "read_vizwiz", "read_vqa", "read_wtq",
           "write_coco_results"]
