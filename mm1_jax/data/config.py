"""The data config: every field the pipeline reads, with its default and why.

`get_data_config(**overrides)` returns an `ml_collections.ConfigDict`; a training config puts it at `config.data`
and the command line can change any field (`--config.data.seq_len=2048`).
"""

import math
from typing import Any

import ml_collections

from mm1_jax.config_keys import check_known, unknown_key

KINDS = ("caption", "interleaved", "text", "sft")
FORMATS = ("wds", "jsonl", "parquet", "arrayrecord", "llava_json")
SOURCE_FIELDS = ("name", "kind", "format", "path", "weight", "image_root")  # an entry of `sources`


def source(name: str, kind: str, format: str, path: str, weight: float, **extra: Any) -> dict[str, Any]:  # noqa: A002
    """One entry of `sources`.

    name: shown in stats and error messages. kind: caption | interleaved | text | sft.
    format: wds (webdataset tar shards) | jsonl | parquet | arrayrecord (each record a utf-8 JSON object) |
    llava_json (one JSON list of LLaVA conversations). path: a file, a glob, or several joined by ',';
    local or any filesystem etils.epath knows (gs://...). weight: share of examples in the mixture (normalised).
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
    # mm1.5 (dynamic grid, MM1.5, arXiv 2409.20566). Crops are cut at r px and resized to the encoder's resolution.
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
    # Bad records: skipped and counted; once a source has seen `min_records_for_rate` records, a skipped share
    # above `max_error_rate` stops the run with a message naming the source and a sample record.
    c.max_error_rate = 0.05
    c.min_records_for_rate = 200
    # The embedded dataset (mm1_jax.data.synthetic) when the sources are its files: written into `directory` from
    # `seed` and `scale` the first time the pipeline or an evaluation needs it (`synthetic.ensure_data`), so reading
    # a config writes nothing. directory '': the sources are the user's own files.
    c.embedded = ml_collections.ConfigDict(dict(directory="", seed=0, scale=1.0))
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
    _whole("data.split.r", split.r, 0)
    _whole("data.split.max_images_to_split", split.max_images_to_split, 0)
    _whole("data.split.n_min", split.n_min, 1)
    _whole("data.split.n_max", split.n_max, 1)
    if split.n_max < split.n_min:
        raise ValueError(f"data.split.n_max={split.n_max} is smaller than data.split.n_min={split.n_min}.")
    embedded = config.get("embedded") or get_data_config().embedded
    if not isinstance(embedded.get("directory", ""), str):
        raise ValueError(f"data.embedded.directory={embedded.directory!r} must be a path ('' for no embedded data).")
    _whole("data.embedded.seed", embedded.get("seed", 0), 0)
    scale = embedded.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"data.embedded.scale={scale!r} must be a positive number.")


def source_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Normalised weight of each source by name, in `sources` order: each source's own weight, replaced by
    `weights` ("name:number,...") where it names the source. Zero stays zero (the pipeline drops that source).

    The one place weights are read (pipeline mixture, inspect report); it reads no files, so a bad value stops the
    run before anything is opened.
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
    return {n: w / total for n, w in weights.items()}
