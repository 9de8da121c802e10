"""The embedded dataset: a small world of coloured shapes, written in the real formats so the real readers run.

One seed decides everything (each source draws from its own stream [seed, i]). Contents (sizes scale with `scale`):
  captions/     webdataset tars (jpg + txt in shard 0, jpg + json in shard 1): "a red circle and a blue square ."
  alt_text/     wds as captions, alt-text-like: short, often incomplete or noisy (rates: `ALT_NOISE`)
  dense_captions/ wds, VeCap-like synthetic dense captions of 2-6 shapes on a 3 x 3 grid (96 px): every object, its
                colour, position and the counts ("three shapes : two circles and one square . a red circle at ...")
  ocr_pages/    wds, text-rich pages (256-512 px; documents, tables, signs) with their text as the caption
  interleaved/  parquet, OBELICS layout (texts/images aligned, image bytes): 2-4 pictures with sentences; each
                document describes its pictures in its own convention (`CONVENTIONS`), so continuing one needs its
                earlier picture-text pairs (in-context learning)
  text/         ArrayRecord of JSON {"text"}: facts about the shapes ("a square has 4 corners .").
  sft/          LLaVA JSON / jsonl conversations, one file per category:
                  vqa.json          general VQA, 1-5 turns each about a new image
                  ocr.jsonl         a rendered word on a 64 px image
                  grounding.jsonl   "where is the red circle ?" -> "<box> x1 , y1 , x2 , y2 </box>" (0-99 of the side)
                  doc_vqa.json      text-rich pages: "what is written in row 2 ?", "what is the number next to cat ?"
                  count_vqa.json    3-8 small shapes (96-128 px): counts, what is where, left of / above
                  refer.json        a region given as a box in the prompt: "what is in this region ?"
                  math.json         counting and arithmetic: "how many shapes are there in both images ?"
                  knowledge.json    facts about shapes, as text or about an image
                  multi_image.json  2-4 images addressed as "image 2"
                  distractors.json  one question, 2-6 images, "Image 1: <image> ... . In Image X, ..." (mPLUG-Owl3 4.5)
                  text_dialogue.json  text-only multi-turn chat with follow-ups ("and a square ?")
                  video.json        {"video": "videos/video-i.mp4", "conversations"} with a <video> marker: 1-3
                                    questions about a clip (below), half of them with their 4 options listed
                                    ("... move ? up , left , down , right"); read as data.video.frames whole images
  sft/videos/   the clips: real .mp4 files (H.264 via PyAV; MPEG-4 Part 2 where FFmpeg lacks H.264), 16 / 24 / 32
                frames at 8 fps (2-4 s), 64 or 96 px. 1-4 shapes of distinct colours appear one after another, each at
                the start of its own quarter of the clip, and stay; one of the first two moves left / right / up / down
                by two cells of the 3 x 3 grid; often (0.6) a still one turns a new colour at a later quarter. The
                questions: order ("which shape appears first ?" / "... last ?" -> "the red circle ."), direction
                ("which way does the red circle move ?" -> "up ."), count ("how many shapes appear ?" -> "three .")
                and colour change ("what colour does the green square turn ?" -> "blue ."); `videos` says more.
  sft/ui.json   Ferret-UI's release format (format ferret_ui_json: "image", "image_w", "image_h", "conversations" with
                <bbox_location0> placeholders, "box_x1y1x2y2" per turn): phone screens (sft/images/ui-i.png, 96 x 192
                portrait or 192 x 96 landscape) of buttons, labels, icons, toggles, text fields and tab bars on an
                8 px layout grid, 1-3 questions each: referring (the widget's type, icon name or text, given its box)
                and grounding (where is a text, an icon, the one widget of a type -> its box); `screens` says more.
                The boxes become text by `mm1_jax.data.coordinates` (Ferret's [x1, y1, x2, y2] on 0-999) when read.
  eval/vqa.json held out VQA (one turn).
  eval/ui/      held out screens as Ferret-UI's evaluation files, <platform>/<family>_test.json (iphone: portrait,
                android: landscape; families widget_classification, icon_recognition, ocr, find_text, find_icons,
                find_widget; one question a screen) + images/, read by `mm1_jax.eval.readers.ui`.
  eval/video.json + eval/videos/  held out clips, one question each (the kinds in turn), with 4 "options" and the
                "answer_index" among them (multiple choice) and the question's "type".
  tokenizer.json  a word-level HF tokenizer over the world's closed vocabulary (built here, deterministic; every
                number 0-999 is one token (v6; 0-99 before); v5 added the videos' words `VIDEO_WORDS`, v6 the screens'
                `UI_WORDS` ("[", "]", widget types, icon names) and the numbers 100-999 of Ferret's grid (1194
                tokens), so ids differ between versions).
The data configs (`embedded_data_config`) read a video as 8 frames sampled 'uniform' (`EMBEDDED_VIDEO`; data.video).
Shapes are listed left to right (in reading order on a 3 x 3 grid), so every caption and answer is exact ground truth.

The package, by job: world (words, vocabulary, tokenizer), images (pictures of shapes), pages (text-rich pages),
descriptions (what the texts say about a picture), videos (clips: scenes, frames, .mp4 bytes, questions), screens
(UI screens: widgets, pixels, Ferret-UI questions and records), records
(one record of each source), writers (each format's writer, `generate`, `ensure_generated`, `ensure_written`),
mixtures (the sources, each stage's weights as data configs, and the SFT sources' MM1.5 categories,
`EMBEDDED_SFT_CATEGORIES`). What is imported here is its API.
"""
from mm1_jax.data.synthetic.descriptions import (ALT_NOISE, CONVENTIONS, alt_text, convention_caption, count_question,
                                                 dense_caption, describe)
from mm1_jax.data.synthetic.images import count_scene, scene_image, shapes_image, text_image
from mm1_jax.data.synthetic.mixtures import (EMBEDDED_SFT_CATEGORIES, EMBEDDED_SOURCES, EMBEDDED_VIDEO, MIXTURES,
                                             embedded_data_config, ensure_data)
from mm1_jax.data.synthetic.pages import (PAGE_ALPHABET, PAGE_LAYOUTS, PAGE_SIZES, glyphs, page_image, page_question,
                                          page_text)
from mm1_jax.data.synthetic.records import (caption_records, grounding_record, interleaved_record, ocr_record,
                                            video_eval_record, video_record, vqa_dialogue_record)
from mm1_jax.data.synthetic.screens import (ICONS, PLATFORM, SCREENS, UI_QUESTIONS, WIDGET_TYPES, question_families,
                                            render_screen, screen, ui_eval_record, ui_question, ui_record)
from mm1_jax.data.synthetic.videos import (DIRECTIONS, PHASES, VIDEO_FPS, VIDEO_FRAMES, VIDEO_QUESTIONS, VIDEO_SIZES,
                                           question_kinds, render_video, video_bytes, video_codec, video_question,
                                           video_scene)
from mm1_jax.data.synthetic.world import (COLOURS, CORNERS, COUNTS, POSITIONS, SHAPES, UI_WORDS, VIDEO_WORDS,
                                          build_tokenizer, vocab_size, vocabulary)
from mm1_jax.data.synthetic.writers import (STREAMS, cache_directory, default_directory, ensure_generated,
                                            ensure_written, generate, write_interleaved, write_sft, write_text,
                                            write_ui, write_ui_eval, write_videos, write_wds)
