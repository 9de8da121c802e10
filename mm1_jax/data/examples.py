"""Examples: one raw record -> token ids, per-token loss weights and image entries.

An example is a dict: `tokens` int32 [L]; `weights` float32 [L], the loss weight of predicting tokens[i+1] at i
(0 at the last token); `images` uint8 [n, S, S, 3] (the model normalises them); `source` int; `splittable`
(pre-training documents may be cut across packed rows, SFT conversations may not). Each image entry is K consecutive
<image> tokens; the entries of a split image are ordered (overview after or before the crops) and marked (<crop_i> /
<overview>, separators, or nothing) as `data.split` says. A video (an SFT record's `video`, at its <video>
placeholder) is `data.video.frames` entries, one whole image per sampled frame, never split.
A record that cannot make an example gives `{"skip": reason, "source": i, "key": where}` (counted, never raised).
"""

import re
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from mm1_jax.data import config as config_lib
from mm1_jax.data import images as images_lib
from mm1_jax.data import sources as sources_lib
from mm1_jax.data import tokenizer as tokenizer_lib
from mm1_jax.data import video as video_lib
from mm1_jax.models.vit import norm_stats

SKIP_REASONS = ("bad_image", "missing_image", "empty_text", "wrong_schema", "bad_json", "no_images", "bad_video",
                "missing_video", "too_many_images", "bad_box")  # bad_box: a region that does not fit its image
CAPTION_KEYS = ("caption", "text", "txt")
TEXT_KEYS = ("text", "content", "txt")


SPLIT_OVERVIEW = ("after", "before")
SPLIT_MARKERS = ("index", "none", "separators")


class ImageEntries(NamedTuple):
    """One image's entries: crops row-major then the overview (`grid` = (rows, columns) when split), or the whole."""

    pixels: np.ndarray  # uint8 [n, S, S, 3]
    grid: tuple[int, int] | None = None


def split_entries(img: Any, split: dict, size: int, norm: str) -> ImageEntries:
    """A decoded image's entries under `split.mode` (none: the whole image; mm1: 2x2 + overview; mm1.5: dynamic,
    the canvas padded with `norm`'s mean colour; ferret_ui: Ferret-UI's two halves along the longer side + the global
    view, `images.split_image_ferret_ui`). Coordinates in the text always refer to the whole image, whatever the mode
    (mm1_jax.data.coordinates)."""
    mode = split["mode"]
    if mode == "none":
        return ImageEntries(images_lib.whole_image(img, size)[None])
    if mode == "mm1":
        return ImageEntries(images_lib.split_image_mm1(img, size), (2, 2))
    if mode == "mm1.5":
        r, n_min, n_max = split["r"] or size, split["n_min"], split["n_max"]
        return ImageEntries(images_lib.split_image_dynamic(img, size, norm, r, n_min, n_max),
                            images_lib.choose_grid(img.width, img.height, r, n_min, n_max))
    if mode == "ferret_ui":
        return ImageEntries(images_lib.split_image_ferret_ui(img, size, split["r"] or size),
                            images_lib.ferret_ui_grid(img.width, img.height))
    raise ValueError(f"data.split.mode={mode!r} is not one of {', '.join(config_lib.SPLIT_MODES)}.")


def arrange_entries(entries: ImageEntries, split: dict, tok: tokenizer_lib.Tokenizer
                    ) -> tuple[np.ndarray, list[list[int]]]:
    """A split image's entries in `split.overview` order, with the marker ids that precede each entry (training
    examples and evaluation prompts both lay images out with this)."""
    if entries.grid is None or len(entries.pixels) == 1:
        return entries.pixels, [[] for _ in entries.pixels]
    crops, overview, (_, n_w) = entries.pixels[:-1], entries.pixels[-1:], entries.grid
    markers, before = split.get("markers", "index"), split.get("overview", "after") == "before"
    if markers == "index":
        crop_marks, over_marks = [[tok.crop_id(i + 1)] for i in range(len(crops))], [[tok.overview_id]]
    elif markers == "separators":
        over_sep, col_sep, row_sep = (tok.encode(s) for s in split["separators"])
        crop_marks = [[] if i == 0 else row_sep if i % n_w == 0 else col_sep for i in range(len(crops))]
        over_marks = [[]] if before else [over_sep]
        if before:  # the overview separator stands between the overview and the crops either way
            crop_marks[0] = over_sep
    else:
        crop_marks, over_marks = [[] for _ in crops], [[]]
    if before:
        return np.concatenate([overview, crops]), over_marks + crop_marks
    return entries.pixels, crop_marks + over_marks


class SkipRecord(Exception):
    """A record that cannot make an example; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


class ExampleBuilder:
    """Callable record -> example for one source (runs inside grain workers, so it holds only picklable config)."""

    def __init__(
        self,
        source: dict[str, Any],
        source_index: int,
        data_config,
        *,
        tokens_per_image: int,
        image_size: int,
        image_norm: str,
    ):
        self.kind = source["kind"]
        self.name = source["name"]
        self.image_root = source.get("image_root", "")
        self.source_index = source_index
        self.tokenizer_path = data_config.tokenizer
        self.k = tokens_per_image
        self.size = image_size
        self.norm = image_norm
        self.max_images = data_config.max_images
        video = data_config.get("video") or {}
        self.video_frames = int(video.get("frames", 24))
        self.video_sampling = str(video.get("sampling", "uniform"))
        self.split = dict(data_config.split)
        if self.split.get("overview", "after") not in SPLIT_OVERVIEW:
            raise ValueError(f"data.split.overview={self.split['overview']!r} is not one of "
                             f"{', '.join(SPLIT_OVERVIEW)}.")
        if self.split.get("markers", "index") not in SPLIT_MARKERS:
            raise ValueError(f"data.split.markers={self.split['markers']!r} is not one of {', '.join(SPLIT_MARKERS)}.")
        if self.split.get("markers") == "separators":
            tok, seps = tokenizer_lib.load_tokenizer(self.tokenizer_path), tuple(self.split["separators"])
            unknown = [s for s in seps if not tok.encode(s) or tok.special.get("<unk>") in tok.encode(s)]
            if len(seps) != 3 or unknown:
                raise ValueError(f"data.split.separators={seps!r} must be three texts (overview, column, row) that the "
                                 f"tokenizer knows; it has no tokens for {unknown!r}.")
        self.add_bos, self.add_eos = data_config.add_bos, data_config.add_eos
        norm_stats(image_norm)  # fail early on a bad norm name (it picks the splitting canvas's pad)

    @property
    def tok(self) -> tokenizer_lib.Tokenizer:
        return tokenizer_lib.load_tokenizer(self.tokenizer_path)

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        key = str(record.get("__key__", "?")) if isinstance(record, dict) else "?"
        try:
            if not isinstance(record, dict):
                raise SkipRecord("wrong_schema", f"record is a {type(record).__name__}")
            if "__error__" in record:  # a reader's verdict, with its sentence when it gave one
                raise SkipRecord(record["__error__"], str(record.get("__detail__") or ""))
            parts = getattr(self, "_" + self.kind)(record)
            return self._assemble(parts)
        except SkipRecord as e:
            return {"skip": e.reason, "source": self.source_index, "key": key, "detail": str(e)}

    # --- record layouts -> parts: ("text", str, learn) | ("image", ImageEntries)

    def _caption(self, rec):
        caption = _first(rec, CAPTION_KEYS)
        if caption is None and isinstance(rec.get("json"), dict):
            caption = _first(rec["json"], CAPTION_KEYS)
        if not isinstance(caption, str):
            raise SkipRecord("wrong_schema", f"no caption field among {CAPTION_KEYS} or json")
        if not caption.strip():
            raise SkipRecord("empty_text", "caption is empty")
        ref = _first(rec, ("image",) + sources_lib.IMAGE_EXTS)
        if ref is None:
            raise SkipRecord("wrong_schema", "no image field (image/jpg/png/...)")
        return [("image", self._image(ref, rec, n_images=1)), ("text", caption, 1.0)]

    def _text(self, rec):
        text = _first(rec, TEXT_KEYS)
        if not isinstance(text, str):
            raise SkipRecord("wrong_schema", f"no text field among {TEXT_KEYS}")
        if not text.strip():
            raise SkipRecord("empty_text", "text is empty")
        return [("text", text, 1.0)]

    def _interleaved(self, rec):
        items = interleaved_items(rec)
        if not any(kind == "text" and value.strip() for kind, value in items):
            raise SkipRecord("empty_text", "document has no text")
        parts, n_images = [], 0
        n_total = sum(kind == "image" for kind, _ in items)
        for kind, value in items:
            if kind == "text" and value.strip():
                parts.append(("text", value, 1.0))
            elif kind == "image" and n_images < self.max_images:  # policy keep_first: later images dropped, text kept.
                entries = self._image(value, rec, n_images=n_total, budget=self.max_images - n_images)
                n_images += len(entries.pixels)
                parts.append(("image", entries))
        return parts

    def _sft(self, rec):
        turns = rec.get("conversations")
        if not isinstance(turns, list) or not turns:
            raise SkipRecord("wrong_schema", "no `conversations` list")
        refs = rec.get("image") or rec.get("images") or []
        refs = refs if isinstance(refs, list) else [refs]
        if len(refs) > self.max_images:
            refs = refs[: self.max_images]
        videos = rec.get("video") or rec.get("videos") or []
        videos = videos if isinstance(videos, list) else [videos]
        if videos and len(videos) * self.video_frames + len(refs) > self.max_images:
            raise SkipRecord("too_many_images", f"{len(videos)} video(s) of data.video.frames={self.video_frames} "
                             f"frames and {len(refs)} image(s) exceed data.max_images={self.max_images}")
        pics = [self._image(r, rec, n_images=len(refs) + len(videos) * self.video_frames) for r in refs]
        clips = [self._video(v, rec) for v in videos]
        values = [str(t.get("value", "")) for t in turns if isinstance(t, dict)]
        parts, queue = [], {}
        for marker, items in (("<image>", pics), ("<video>", clips)):
            if any(marker in v for v in values):
                queue[marker] = list(items)
            else:  # LLaVA convention: images (videos) without markers go before the first question
                parts += [("image", p) for p in items]
                queue[marker] = []
        for t in turns:
            if not isinstance(t, dict) or not isinstance(t.get("value"), str):
                raise SkipRecord("wrong_schema", "a conversation turn lacks a string `value`")
            answer = t.get("from") in ("gpt", "assistant")
            parts.append(("text", "Assistant:" if answer else "User:", 0.0))
            for piece in re.split(r"(<image>|<video>)", t["value"]):
                if piece in queue:
                    if queue[piece]:  # a marker beyond the record's images (videos) is dropped
                        parts.append(("image", queue[piece].pop(0)))
                elif piece.strip():
                    parts.append(("text", piece.strip(), 1.0 if answer else 0.0))
            if answer:
                parts.append(("eos", None, 1.0))
        if not any(p[0] == "text" and p[2] > 0 for p in parts):
            raise SkipRecord("empty_text", "conversation has no answer text")
        return parts

    # --- helpers

    def _image(self, ref, rec, n_images: int, budget: int | None = None) -> ImageEntries:
        """Encoded image -> its entries [n, S, S, 3]; split when the config asks and the budget allows."""
        try:
            data = sources_lib.read_image_ref(ref, rec.get("__folder__", "."), self.image_root)
        except (FileNotFoundError, OSError) as e:
            raise SkipRecord("missing_image", str(e)) from e
        except KeyError as e:
            raise SkipRecord("wrong_schema", str(e)) from e
        try:
            img = images_lib.decode_image(data)
        except ValueError as e:
            raise SkipRecord("bad_image", str(e)) from e
        budget = self.max_images if budget is None else budget
        if self.split["mode"] != "none" and self.kind in self.split["kinds"] and \
                n_images <= self.split["max_images_to_split"]:
            entries = split_entries(img, self.split, self.size, self.norm)
            if len(entries.pixels) <= budget // max(1, n_images):
                return entries
        return ImageEntries(images_lib.whole_image(img, self.size)[None])

    def _video(self, ref, rec) -> ImageEntries:
        """A video file or frame folder -> data.video.frames whole-image entries [frames, S, S, 3] (never split)."""
        try:
            frames = sources_lib.read_video_ref(ref, rec.get("__folder__", "."), self.image_root, self.video_frames,
                                                self.video_sampling)
        except KeyError as e:
            raise SkipRecord("wrong_schema", str(e)) from e
        except video_lib.MissingVideo as e:
            raise SkipRecord("missing_video", str(e)) from e
        except ValueError as e:
            raise SkipRecord("bad_video", str(e)) from e
        return ImageEntries(np.stack([images_lib.whole_image(Image.fromarray(f), self.size)
                                      for f in frames]))

    def _assemble(self, parts) -> dict[str, Any]:
        """Parts -> tokens, target weights and image entries."""
        tok = self.tok
        ids, learn, pics = [], [], []
        if self.add_bos:
            ids.append(tok.bos_id)
            learn.append(0.0)
        for part in parts:
            if part[0] == "text":
                new = tok.encode(part[1])
                ids += new
                learn += [part[2]] * len(new)
            elif part[0] == "eos":
                ids.append(tok.eos_id)
                learn.append(part[2])
            else:
                entries, marks = arrange_entries(part[1], self.split, tok)
                for mark in marks:
                    ids += mark
                    learn += [1.0] * len(mark)
                    ids += [tok.image_id] * self.k
                    learn += [0.0] * self.k
                pics.append(entries)
        if self.add_eos and self.kind != "sft":
            ids.append(tok.eos_id)
            learn.append(1.0)
        weights = np.zeros(len(ids), np.float32)
        weights[:-1] = learn[1:]
        pics = np.concatenate(pics) if pics else np.zeros((0, self.size, self.size, 3), np.uint8)
        return {
            "tokens": np.asarray(ids, np.int32),
            "weights": weights,
            "images": pics,
            "source": self.source_index,
            "splittable": self.kind != "sft",
        }


def interleaved_items(rec: dict[str, Any]) -> list[tuple[str, Any]]:
    """OBELICS (`texts`/`images` aligned lists) or MMC4 (`text_list` + `image_info`) -> ordered (kind, value)."""
    if isinstance(rec.get("texts"), list) and isinstance(rec.get("images"), list):
        if len(rec["texts"]) != len(rec["images"]):
            raise SkipRecord("wrong_schema", "`texts` and `images` differ in length")
        items = []
        for text, image in zip(rec["texts"], rec["images"]):
            if image is not None:
                items.append(("image", image))
            elif isinstance(text, str):
                items.append(("text", text))
        return items
    if isinstance(rec.get("text_list"), list):
        before = {}
        for info in rec.get("image_info") or []:
            before.setdefault(int(info.get("matched_text_index", 0)), []).append(info)
        items = []
        for i, text in enumerate(rec["text_list"]):
            items += [("image", info) for info in before.get(i, [])]
            items.append(("text", str(text)))
        return items
    raise SkipRecord("wrong_schema", "interleaved record needs `texts`+`images` or `text_list`+`image_info`")


def _first(rec: dict[str, Any], keys) -> Any:
    for k in keys:
        if k in rec and rec[k] is not None:
            return rec[k]
    return None
