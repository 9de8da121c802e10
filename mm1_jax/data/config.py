"""The data config: every field the pipeline reads, with its default and why.

`get_data_config(**overrides)` returns an `ml_collections.ConfigDict`; a training config puts it at `config.data`
and the command line can change any field (`--config.data.seq_len=2048`).

Mixture weights have one owner, `source_weights`: each source's own `weight`, replaced by `data.weights` where it names
the source; then, when `data.sft.categories` is set, MM1.5's SFT mixture by category (`sft_mixture`, arXiv 2409.20566
Sec. 3.2): the group weights (w_single, w_multi, w_text) = `data.sft.groups` split the examples between single-image,
multi-image and text-only data; inside the single-image group a category gets alpha times general data's examples
(`data.sft.alpha`, general's alpha being 1: "per batch, 1 : alpha" relative to general data); inside a category its
sources share by their own weights (so data.weights still drops a source with 0, or re-weights it inside its
category, but no longer sets its share of the whole mixture).
"""

import math
from typing import Any

import ml_collections

from mm1_jax.config_keys import check_known, did_you_mean, unknown_key
from mm1_jax.data.video import SAMPLING_RULES as VIDEO_SAMPLING

KINDS = ("caption", "interleaved", "text", "sft")
FORMATS = ("wds", "jsonl", "parquet", "arrayrecord", "llava_json", "videochat2_json", "activitynet_qa",
           "ferret_ui_json")
# data.split.mode: none | mm1 (2x2 + overview) | mm1.5 (MM1.5's dynamic grid) | ferret_ui (Ferret-UI's two halves along
# the longer side + global view); mm1_jax.data.examples.split_entries
SPLIT_MODES = ("none", "mm1", "mm1.5", "ferret_ui")
SOURCE_FIELDS = ("name", "kind", "format", "path", "weight", "image_root")  # an entry of `sources`

# MM1.5's SFT data categories (arXiv 2409.20566 Sec. 3.2): six single-image ones, then multi-image and text-only data,
# each of those two a group of its own. Groups in `data.sft.groups` order: (single-image, multi-image, text-only).
SFT_SINGLE_IMAGE = ("general", "text_rich", "science", "math", "code", "refer_ground")
SFT_CATEGORIES = SFT_SINGLE_IMAGE + ("multi_image", "text")
SFT_GROUPS = ("single-image", "multi-image", "text-only")
SFT_GROUP_OF = {**{c: 0 for c in SFT_SINGLE_IMAGE}, "multi_image": 1, "text": 2}  # category -> index in groups
# MM1.5's final choices [S]: alpha relative to general data (general: 1, the reference) and the group weights.
# text_rich 3.3 is ours: no source gives text-rich data's alpha; 3.3 is the published split's 37.2 / 11.3 (configs/
# mm15_sft.py), with which the final alphas reproduce every published percentage within rounding.
SFT_ALPHA = dict(text_rich=3.3, science=0.1, math=0.5, code=0.2, refer_ground=2.0)
SFT_FINAL_GROUPS = (0.8, 0.1, 0.1)


def source(name: str, kind: str, format: str, path: str, weight: float, **extra: Any) -> dict[str, Any]:  # noqa: A002
    """One entry of `sources`.

    name: shown in stats and error messages. kind: caption | interleaved | text | sft.
    format: wds (webdataset tar shards) | jsonl | parquet | arrayrecord (each record a utf-8 JSON object) |
    llava_json (one JSON list of LLaVA conversations; a jsonl of them, ShareGPTVideo's SFT files, is jsonl) |
    videochat2_json (VideoChat2's instruction json: {"video", "QA": [{"i", "q", "a"}]}) | activitynet_qa
    (ActivityNet-QA's release: the <split>_q.json files, their <split>_a.json beside them; image_root the videos'
    folder): the two video formats become LLaVA video records (mm1_jax.data.sources) | ferret_ui_json (Ferret-UI's
    release format: LLaVA records with image_w, image_h and box_x1y1x2y2, each <bbox_locationK> written as
    coordinates text, mm1_jax.data.coordinates). path: a file, a glob, or several joined by ',';
    local or any filesystem etils.epath knows (gs://...). weight: share of examples in the mixture (normalised); with
    `data.sft.categories` set, its share inside its category (e.g. its number of samples, to mix a category by size).
    image_root (extra): folder that relative image paths in jsonl/json/arrayrecord records are read from
    (default: the record file's folder).
    """
    if kind not in KINDS:
        raise ValueError(f"Data source {name!r}: kind must be one of {KINDS}, got {kind!r}.")
    if format not in FORMATS:
        raise ValueError(f"Data source {name!r}: format must be one of {FORMATS}, got {format!r}.")
    for key in extra:
        if key != "image_root":
            raise ValueError(f"Data source {name!r}: {unknown_key('', key, SOURCE_FIELDS)}")
    return dict(name=name, kind=kind, format=format, path=path, weight=float(weight),
                image_root=extra.get("image_root", ""))


def get_data_config(**overrides: Any) -> ml_collections.ConfigDict:
    """Defaults for MM1 pre-training; keyword overrides replace top-level fields (dotted names via `.update`)."""
    c = ml_collections.ConfigDict()
    c.sources = []  # list of `source(...)` dicts; weights need not sum to 1.
    # Mixture weights by source name, over the sources' own: "caption:66,interleaved:33,text:0" (the data-mix
    # ablations, `--config.data.weights=...`, as `sources` is a list the command line cannot change). Sources not
    # named keep their weight; weight 0 drops a source (never opened or read; stats show 0 examples). "": no change.
    # With `sft.categories` set (below) these are still the sources' own weights, applied first, but a source's own
    # weight then only sets its share inside its category: the categories' shares come from sft.alpha and sft.groups.
    c.weights = ""
    c.tokenizer = ""  # path to a HF tokenizer.json or a SentencePiece .model.
    c.seq_len = 4096  # tokens per packed row (MM1 pre-training).
    c.max_images = 16  # image entries (crops count one each) per row, MM1: at most 16 images per sequence.
    c.seed = 0  # shuffling and mixing; same seed -> same batches on every run.
    c.shuffle = True  # global per-epoch shuffle of each source's records (grain index shuffle).
    c.shard_by_host = True  # host p of n reads records p, p+n, p+2n, ... of every source.
    c.worker_count = 0  # grain worker processes for reading/decoding (0: in the main process).
    c.worker_buffer_size = 2  # elements each worker keeps ready.
    c.read_threads = 2  # threads reading and decoding records (in each worker, or the main process).
    c.prefetch_buffer_size = 16  # examples read ahead by those threads (each holds its decoded images).
    c.add_bos = True  # <bos> at the start of each document, <eos> at its end.
    c.add_eos = True
    # Packing. Pre-training documents may be cut across rows (each piece is its own segment, positions restart) so
    # rows fill up; SFT conversations never are: they start a new row, and one longer than seq_len is truncated.
    c.pack = ml_collections.ConfigDict()
    c.pack.split_documents = True
    c.pack.min_piece = 32  # never start a piece shorter than this at the end of a row: pad instead.
    # Interleaved documents with more than max_images images keep the first max_images and drop the later images
    # (their text is kept).
    # Image splitting for high resolution (MM1 SFT and MM1.5). mode: none | mm1 (2x2 crops + overview) |
    # mm1.5 (dynamic grid, MM1.5, arXiv 2409.20566) | ferret_ui (Ferret-UI, arXiv 2404.05719: the screen squashed and
    # cut in two along its longer side, top/bottom or left/right, + the global view; Ferret-UI puts the global view
    # before the halves: overview='before'; n_min / n_max unused). Crops are cut at r px and resized to the
    # encoder's resolution.
    c.split = ml_collections.ConfigDict()
    c.split.mode = "none"
    c.split.kinds = ("sft",)  # example kinds whose images are split.
    c.split.r = 0  # crop size used to choose the grid; 0 -> the encoder's image size. MM1.5: 672.
    c.split.n_min = 4  # MM1.5 training (4, 9); inference (4, 16).
    c.split.n_max = 9
    # MM1.5 (arXiv 2409.20566) Table 3: where the overview goes and how the crops are marked. overview: after (MM1.5's
    # choice) | before the crops. markers: index (<crop_i> before crop i, <overview> before the overview; MM1.5's
    # choice) | none | separators (split.separators: overview / column / row separator texts between the entries).
    c.split.overview = "after"
    c.split.markers = "index"
    c.split.separators = (":", ",", "\n")
    c.split.max_images_to_split = 2  # MM1.5 splits only samples with fewer than 3 images.
    # Videos (an SFT record's "video": a file or a frame folder, with a <video> placeholder; mm1_jax.data.video): each
    # becomes `frames` image entries, frame by frame as whole images (never split), so a video takes frames x
    # tokens-per-image tokens and `frames` of data.max_images. frames: MM1.5-Video 24 (arXiv 2409.20566), mPLUG-Owl3 8.
    # sampling: uniform (MM1.5-Video; SlowFast-LLaVA's segment midpoints) | owl3 (mPLUG-Owl3's release: segment
    # centres, short clips padded with the last frame) | linspace (LLaVA-Video: first to last frame); formulas in
    # mm1_jax.data.video.
    c.video = ml_collections.ConfigDict(dict(frames=24, sampling="uniform"))
    # Bad records: skipped and counted; once a source has seen `min_records_for_rate` records, a skipped share
    # above `max_error_rate` stops the run with a message naming the source and a sample record.
    c.max_error_rate = 0.05
    c.min_records_for_rate = 200
    # The embedded dataset (mm1_jax.data.synthetic) when the sources are its files: written into `directory` from
    # `seed` and `scale` the first time the pipeline or an evaluation needs it (`synthetic.ensure_data`), so reading
    # a config writes nothing. directory '': the sources are the user's own files.
    c.embedded = ml_collections.ConfigDict(dict(directory="", seed=0, scale=1.0))
    # MM1.5's SFT mixture by category (arXiv 2409.20566 Sec. 3.2; see the module docstring and `sft_mixture`), in force
    # when `categories` is set: "source:category,..." naming a category (SFT_CATEGORIES) for every source of positive
    # weight (e.g. "vqa:general,ocr:text_rich,grounding:refer_ground,multi_image:multi_image,text_dialogue:text").
    # alpha: examples of a single-image category per example of general data, in every batch (general: 1); a
    # category without a source drops out and the others keep their ratios. groups: (w_single, w_multi, w_text),
    # each group's share of all examples (summing to 1); a group with a positive weight needs a source.
    # Defaults: MM1.5's final mixture (text_rich's alpha ours, derived from the published split).
    c.sft = ml_collections.ConfigDict()
    c.sft.categories = ""
    c.sft.alpha = ml_collections.ConfigDict(dict(SFT_ALPHA))
    c.sft.groups = SFT_FINAL_GROUPS
    c.update(overrides)
    return c


def _whole(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise ValueError(f"{field}={value!r} must be {kind}.")


def check_known_fields(section: str, config: Any, defaults: ml_collections.ConfigDict) -> None:
    """Refuse a key of `config` (or of a sub-section) that `defaults` does not have, in one sentence naming it."""
    check_known(section, config.keys(), defaults.keys())
    for key in config.keys():
        if isinstance(defaults[key], ml_collections.ConfigDict) and hasattr(config[key], "keys"):
            check_known_fields(f"{section}.{key}", config[key], defaults[key])


def validate_data_config(config: ml_collections.ConfigDict) -> None:
    """Every field of the data config known (`get_data_config`'s, each source's `SOURCE_FIELDS`) and every number
    within its range (ValueError naming the field and the value); reads no file, so a bad value stops a run before
    the dataset, the tokenizer or a compilation is touched."""
    if config.get("sft") is not None:  # before the unknown-key check: its sentences say what an alpha key means
        sft_alpha(config)
        sft_groups(config)
        sft_categories(config)
    check_known_fields("data", config, get_data_config())
    for s in config.sources:
        for key in s:
            if key not in SOURCE_FIELDS:
                raise ValueError(f"Data source {s.get('name')!r}: {unknown_key('', key, SOURCE_FIELDS)}")
    _whole("data.seq_len", config.seq_len, 1)
    for name in ("max_images", "seed", "worker_count", "read_threads", "prefetch_buffer_size", "min_records_for_rate"):
        _whole(f"data.{name}", config[name], 0)
    _whole("data.worker_buffer_size", config.worker_buffer_size, 1)
    rate = config.max_error_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"data.max_error_rate={rate!r} must lie in [0, 1].")
    _whole("data.pack.min_piece", config.pack.min_piece, 0)
    split = config.split
    if split.mode not in SPLIT_MODES:
        raise ValueError(f"data.split.mode={split.mode!r} is not a splitting mode"
                         f"{did_you_mean(str(split.mode), SPLIT_MODES)}; the modes are {', '.join(SPLIT_MODES)}.")
    _whole("data.split.r", split.r, 0)
    _whole("data.split.max_images_to_split", split.max_images_to_split, 0)
    _whole("data.split.n_min", split.n_min, 1)
    _whole("data.split.n_max", split.n_max, 1)
    if split.n_max < split.n_min:
        raise ValueError(f"data.split.n_max={split.n_max} is smaller than data.split.n_min={split.n_min}.")
    video = config.get("video") or get_data_config().video
    _whole("data.video.frames", video.get("frames", 24), 1)
    rule = video.get("sampling", "uniform")
    if rule not in VIDEO_SAMPLING:
        raise ValueError(f"data.video.sampling={rule!r} is not a sampling rule"
                         f"{did_you_mean(str(rule), VIDEO_SAMPLING)}; the rules are {', '.join(VIDEO_SAMPLING)}.")
    embedded = config.get("embedded") or get_data_config().embedded
    if not isinstance(embedded.get("directory", ""), str):
        raise ValueError(f"data.embedded.directory={embedded.directory!r} must be a path ('' for no embedded data).")
    _whole("data.embedded.seed", embedded.get("seed", 0), 0)
    scale = embedded.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"data.embedded.scale={scale!r} must be a positive number.")


def source_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Normalised weight of each source by name, in `sources` order: each source's own weight, replaced by
    `weights` ("name:number,...") where it names the source; with `sft.categories` set, those weights only split each
    category's share among its sources and the category shares come from `sft.alpha` and `sft.groups`
    (`sft_mixture`). Zero stays zero (the pipeline drops that source).

    The one place weights are read (pipeline mixture, inspect report, the trainer's and the sweep's config checks); it
    reads no files, so a bad value stops the run before anything is opened.
    """
    names = [s["name"] for s in config.sources]
    weights = {}
    for s in config.sources:
        if s["weight"] < 0:
            raise ValueError(f"Data source {s['name']!r}: weight must be >= 0, got {s['weight']}.")
        weights[s["name"]] = float(s["weight"])
    spec = config.get("weights", "") or ""
    given = set()
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, number = item.partition(":")
        name = name.strip()
        try:
            w = float(number) if sep and name else None
        except ValueError:
            w = None
        if w is None or not math.isfinite(w):
            raise ValueError(
                f"data.weights={spec!r}: item {item.strip()!r} is not name:number (e.g. caption:66,text:0)."
            )
        if name not in weights:
            raise ValueError(f"data.weights={spec!r}: {name!r} is not a source; the sources are {', '.join(names)}.")
        if name in given:
            raise ValueError(f"data.weights={spec!r}: {name!r} is given more than once.")
        if w < 0:
            raise ValueError(f"data.weights={spec!r}: the weight of {name!r} is {number.strip()}; it must be >= 0.")
        weights[name] = w
        given.add(name)
    total = sum(weights.values())
    if total <= 0:
        where = f"data.weights={spec!r}" if spec.strip() else "Data config"
        raise ValueError(f"{where}: every source has weight 0; give at least one source a positive weight.")
    categories = sft_categories(config)
    if categories:
        return sft_mixture(weights, categories, sft_alpha(config), sft_groups(config))
    return {n: w / total for n, w in weights.items()}


# --- MM1.5's SFT mixture by category


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sft_categories(config: ml_collections.ConfigDict) -> dict[str, str]:
    """`sft.categories` ("source:category,...") as {source name: category}; {} when unset. Every name must be a
    source and every category one of SFT_CATEGORIES (ValueError in one sentence naming the item)."""
    sft = config.get("sft") or {}
    spec = sft.get("categories", "") or ""
    if not isinstance(spec, str):
        raise ValueError(f"data.sft.categories={spec!r} must be a string 'source:category,...' (e.g. vqa:general).")
    names = [s["name"] for s in config.sources]
    out: dict[str, str] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, category = item.partition(":")
        name, category = name.strip(), category.strip()
        if not (sep and name and category):
            raise ValueError(f"data.sft.categories={spec!r}: item {item.strip()!r} is not source:category "
                             "(e.g. vqa:general,ocr:text_rich).")
        if name not in names:
            raise ValueError(f"data.sft.categories={spec!r}: {name!r} is not a source; the sources are "
                             f"{', '.join(names)}.")
        if category not in SFT_CATEGORIES:
            raise ValueError(f"data.sft.categories={spec!r}: source {name!r}'s category {category!r} is not one"
                             f"{did_you_mean(category, SFT_CATEGORIES)}; the categories are "
                             f"{', '.join(SFT_CATEGORIES)}.")
        if name in out:
            raise ValueError(f"data.sft.categories={spec!r}: {name!r} is given more than once.")
        out[name] = category
    return out


def sft_alpha(config: ml_collections.ConfigDict) -> dict[str, float]:
    """`sft.alpha` over the six single-image categories, general's being 1 (the reference); a category `sft.alpha`
    leaves out takes MM1.5's final value (SFT_ALPHA). ValueError naming the field and value for an alpha below 0, not
    a number, or for a category that has none (general, multi_image, text, a misspelling)."""
    given = (config.get("sft") or {}).get("alpha") or {}
    alpha = {"general": 1.0, **SFT_ALPHA}
    for key in list(given):
        value = given[key]
        if key == "general":
            raise ValueError(f"data.sft.alpha.general={value!r}: general data is the reference (alpha 1); give the "
                             "other categories' alpha relative to it.")
        if key in ("multi_image", "text"):
            raise ValueError(f"data.sft.alpha.{key}={value!r}: {key} data is weighted by data.sft.groups "
                             "(w_single, w_multi, w_text), not by an alpha.")
        if key not in SFT_ALPHA:
            raise ValueError(unknown_key("data.sft.alpha", key, SFT_ALPHA, "a category with an alpha",
                                         "the categories"))
        if not _number(value) or value < 0:
            raise ValueError(f"data.sft.alpha.{key}={value!r} must be a number >= 0 (examples per example of "
                             "general data).")
        alpha[key] = float(value)
    return alpha


def sft_groups(config: ml_collections.ConfigDict) -> tuple[float, float, float]:
    """`sft.groups` = (w_single, w_multi, w_text): three numbers >= 0 summing to 1 (ValueError otherwise)."""
    groups = (config.get("sft") or {}).get("groups", SFT_FINAL_GROUPS)
    if (not isinstance(groups, (tuple, list)) or len(groups) != 3
            or not all(_number(g) and g >= 0 for g in groups)):
        raise ValueError(f"data.sft.groups={groups!r} must be three numbers >= 0 (w_single, w_multi, w_text), "
                         "e.g. (0.8, 0.1, 0.1).")
    if abs(sum(groups) - 1) > 1e-6:
        raise ValueError(f"data.sft.groups={tuple(groups)!r} sums to {sum(groups):.6g}; (w_single, w_multi, w_text) "
                         "must sum to 1.")
    return tuple(float(g) for g in groups)


def sft_mixture(own: dict[str, float], categories: dict[str, str], alpha: dict[str, float],
                groups: tuple[float, float, float]) -> dict[str, float]:
    """MM1.5's SFT mixture (arXiv 2409.20566 Sec. 3.2) as per-source weights summing to 1, in `own`'s order.

    own: each source's own weight (after data.weights), its share inside its category; 0 drops the source.
    categories: source -> category (SFT_CATEGORIES); every source of positive own weight needs one.
    alpha: examples of each single-image category per example of general data (general: 1).
    groups: (w_single, w_multi, w_text), the share of all examples of each group.

    weight(s) = w_group(c) * a(c) * own(s) / sum(own of c's sources), c the category of s, where a(c) is
    alpha(c) / sum(alpha of the single-image categories that have a source) for single-image data and 1 for the
    multi-image and text-only groups (each one category). A single-image category without a source drops out, the
    others keeping their ratios to general data; a group given a positive weight without a source is an error.
    """
    live = {n: w for n, w in own.items() if w > 0}
    for name, w in live.items():
        if name not in categories:
            raise ValueError(f"data.sft.categories gives no category to source {name!r} (weight {w:g}); give it one "
                             f"of {', '.join(SFT_CATEGORIES)}, or drop it with data.weights='{name}:0'.")
    total = {c: sum(w for n, w in live.items() if categories[n] == c) for c in SFT_CATEGORIES}
    present = [c for c in SFT_SINGLE_IMAGE if total[c] > 0]
    norm = sum(alpha[c] for c in present)
    if groups[0] > 0 and norm <= 0:
        have = f"its categories with a source ({', '.join(present)}) all have alpha 0" if present else \
            "no source of positive weight is in a single-image category"
        raise ValueError(f"data.sft.groups={groups!r} gives single-image data {groups[0]:g}, but {have}.")
    share = {c: groups[0] * alpha[c] / norm for c in present} if norm > 0 else {}
    for g, category in ((1, "multi_image"), (2, "text")):
        if groups[g] > 0 and total[category] <= 0:
            raise ValueError(f"data.sft.groups={groups!r} gives {SFT_GROUPS[g]} data {groups[g]:g}, but no source of "
                             f"positive weight is in category {category}; set it to 0 or add such a source.")
        share[category] = groups[g]
    return {n: (share.get(categories[n], 0.0) * w / total[categories[n]] if w > 0 else 0.0) for n, w in own.items()}


def sft_category_table(config: ml_collections.ConfigDict) -> dict[str, dict[str, Any]]:
    """Each SFT category's group, alpha (None outside the single-image group), resolved weight and sources, for
    reports (`python -m mm1_jax.data.inspect`); {} without `sft.categories`."""
    categories = sft_categories(config)
    if not categories:
        return {}
    weights, alpha = source_weights(config), sft_alpha(config)
    table = {}
    for c in SFT_CATEGORIES:
        names = [n for n in weights if categories.get(n) == c]
        table[c] = dict(group=SFT_GROUPS[SFT_GROUP_OF[c]], alpha=alpha.get(c), weight=sum(weights[n] for n in names),
                        sources=names)
    return table
