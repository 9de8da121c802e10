"""`config.train`, `config.init` and `config.eval`: the defaults with what each field means, and their checks.

A stage config (configs/tiny.py, configs/mm1_sft.py, ...) starts from `train_defaults()` and changes what it needs;
the command line changes any field (`--config.train.steps=100`). Unknown fields and bad values are refused
with one sentence naming the field and the value.
"""
from __future__ import annotations

import importlib
import math

import ml_collections

from mm1_jax.config_keys import check_known, unknown_key
from mm1_jax.runtime.distributed import DEFAULT_HOST_TIMEOUT_S, MAX_HOST_TIMEOUT_S
from mm1_jax.train.optim import OPTIMIZERS

PARTS = ("encoder", "connector", "decoder")
HOST_DATA = ("shard", "global")
LR_RULES = ("fixed", "mm1_law")
ON_DAMAGE = ("resume_older", "stop")
# a training config's sections: model (mm1_jax.models.registry), data (mm1_jax.data.config), train and init (here),
# eval (mm1_jax.eval.datasets), mesh and axis_rules (mm1_jax.train.sharding)
SECTIONS = ("model", "data", "train", "init", "eval", "mesh", "axis_rules")


def train_defaults() -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.steps = 1000                       # optimizer updates
    t.global_batch_size = 32             # rows of data.seq_len tokens per update, over all hosts
    t.grad_accum_steps = 1               # micro-batches per update (same result as one big batch)
    t.seed = 0                           # parameter initialisation
    t.trainable = PARTS                  # what trains, the rest stays frozen (MM1 trains everything): parts, leading
                                         # parameter paths or fnmatch patterns ('decoder/*/attn/image_*')
    t.host_data = "shard"                # shard: each host reads its share of records; global: each host reads
                                         # the whole global batch and keeps its rows (same batches for any host count)
    t.log_every = 10                     # metrics are fetched from the devices, printed and written every N steps
    t.max_nonfinite_steps = 5            # non-finite losses in a row before the run stops
    t.host_timeout_s = DEFAULT_HOST_TIMEOUT_S  # multi-host: seconds without a heartbeat from another process before
                                         # the others stop, naming it and the step to resume from (at most 600)
    # Evaluation hooks, built from these fields by the module `evaluator` names (imported by name, big_vision-style).
    t.evaluator = "mm1_jax.eval.evaluator"
    t.eval_every = 0                     # score eval_tasks every N steps and at the last step (0: never)
    t.eval_tasks = ()                    # mm1_jax.eval task names (python -m mm1_jax.eval --help)
    t.eval_shots = (0,)                  # demonstrations per prompt; one score per task and shot count
    t.eval_limit = 100                   # items per task
    t.sample_task = ""                   # an eval task whose 0-shot predictions are logged as text samples
    t.num_samples = 0                    # its items predicted (0: no samples)
    t.sample_every = 0                   # samples every N steps (0: only at the end)
    t.optimizer = ml_collections.ConfigDict(dict(
        name="adamw", lr_rule="fixed", lr=1e-3, weight_decay=0.0, warmup_steps=100,
        final_lr_fraction=0.1,  # MM1: cosine to 10%
        b1=0.9, b2=0.95, eps=1e-8, clip_norm=1.0))
    # on_damage: what a restart does when the newest step cannot be read (a file truncated or missing, as a full disk
    # or a bucket hiccup leaves): resume_older moves that step aside (checkpoints/damaged/) and resumes from the newest
    # step that restores completely; stop refuses, naming the step and the file.
    # keep_steps: steps saved and never deleted beside the last `keep` (a later stage can start from any of them:
    # init.checkpoint_step; MM1 Fig. 7c fine-tunes several steps of one pre-training run)
    t.checkpoint = ml_collections.ConfigDict(dict(every_steps=500, keep=3, keep_steps=(), async_save=True,
                                                  on_damage="resume_older"))
    return t


def init_defaults() -> ml_collections.ConfigDict:
    i = ml_collections.ConfigDict()
    i.checkpoint = ""   # a previous stage's workdir/checkpoints: its latest parameters start this stage; position
    #                     tables (ViT pos_embed, C-Abstractor pos_emb) are resized bicubically when the encoder's
    #                     resolution changed (MM1 SFT, MM1.5 high-resolution continual pre-training)
    i.checkpoint_step = -1  # the step of init.checkpoint to start from (-1: the latest)
    i.encoder = ""      # converted weights (mm1_jax.pretrained.init_from_checkpoints)
    i.decoder = ""
    return i


def evaluator_module(config: ml_collections.ConfigDict):
    """The module `config.train.evaluator` names (by default `mm1_jax.eval.evaluator`): `check_config`, `Evaluator`."""
    try:
        return importlib.import_module(config.train.evaluator)
    except ImportError as e:
        raise ValueError(f"train.evaluator={config.train.evaluator!r} cannot be imported: {e}.") from None


def _known(section: str, cfg, defaults) -> None:
    check_known(section, cfg.keys(), defaults.keys())


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(field: str, value, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{field}={value!r} must be {kind}.")


def _check_number(field: str, value, low: float, high: float = math.inf, *, low_open: bool = False,
                  high_open: bool = False, text: str = "") -> None:
    """A finite number within [low, high] (either end open when asked); `text` words the range."""
    ok = _is_number(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{field}={value!r} must be {text}.")


def validate_train_config(config: ml_collections.ConfigDict) -> None:
    """Raise ValueError naming the first bad field of config.train / config.init (every number within its range),
    then let the evaluator check its fields (config.eval, train.eval_*), which may look for files."""
    if "train" not in config:
        raise ValueError("config.train is missing; start from mm1_jax.train.config.train_defaults().")
    t, d = config.train, train_defaults()
    _known("train", t, d)
    _known("train.optimizer", t.optimizer, d.optimizer)
    _known("train.checkpoint", t.checkpoint, d.checkpoint)
    if "init" in config:
        _known("init", config.init, init_defaults())
        step = config.init.get("checkpoint_step", -1)
        if isinstance(step, bool) or not isinstance(step, int) or step < -1:
            raise ValueError(f"init.checkpoint_step={step!r} must be a step number (>= 0) or -1 for the latest.")
        if step != -1 and not config.init.get("checkpoint"):
            raise ValueError(f"init.checkpoint_step={step} needs init.checkpoint (the run whose step it is).")
    for name in ("steps", "global_batch_size", "grad_accum_steps", "log_every", "max_nonfinite_steps"):
        _check_int(f"train.{name}", t[name], 1)
    for name in ("sample_every", "num_samples", "eval_every", "seed"):
        _check_int(f"train.{name}", t[name], 0)
    _check_number("train.host_timeout_s", t.host_timeout_s, 0, MAX_HOST_TIMEOUT_S, low_open=True,
                  text=f"a number of seconds in (0, {MAX_HOST_TIMEOUT_S:g}] (jax's own limit is longer)")
    bad = [p for p in t.trainable if not isinstance(p, str) or (p not in PARTS and not set(p) & set("/*?["))]
    if bad or not t.trainable:
        raise ValueError(f"train.trainable={tuple(t.trainable)!r} must name some of {', '.join(PARTS)}, or parameter "
                         "paths / fnmatch patterns under them (e.g. 'decoder/*/attn/gate_proj/*').")
    if t.host_data not in HOST_DATA:
        raise ValueError(f"train.host_data={t.host_data!r} is not one of {', '.join(HOST_DATA)}.")
    o = t.optimizer
    if o.name not in OPTIMIZERS:
        raise ValueError(f"train.optimizer.name={o.name!r} is not one of {', '.join(OPTIMIZERS)}.")
    if o.lr_rule not in LR_RULES:
        raise ValueError(f"train.optimizer.lr_rule={o.lr_rule!r} is not one of {', '.join(LR_RULES)}.")
    _check_int("train.optimizer.warmup_steps", o.warmup_steps, 0)
    if o.lr_rule == "fixed":  # mm1_law derives both from the decoder's size
        _check_number("train.optimizer.lr", o.lr, 0, low_open=True, text="positive")
        _check_number("train.optimizer.weight_decay", o.weight_decay, 0, text="non-negative")
    _check_number("train.optimizer.final_lr_fraction", o.final_lr_fraction, 0, 1, text="in [0, 1]")
    _check_number("train.optimizer.b1", o.b1, 0, 1, high_open=True, text="in [0, 1)")
    _check_number("train.optimizer.b2", o.b2, 0, 1, high_open=True, text="in [0, 1)")
    _check_number("train.optimizer.eps", o.eps, 0, low_open=True, text="positive")
    _check_number("train.optimizer.clip_norm", o.clip_norm, 0, text="non-negative (0: no clipping)")
    c = t.checkpoint
    _check_int("train.checkpoint.keep", c.keep, 1)
    _check_int("train.checkpoint.every_steps", c.every_steps, 0)
    keep_steps = c.get("keep_steps", ())
    if not isinstance(keep_steps, (tuple, list)) or not all(_is_int(k) and k > 0 for k in keep_steps):
        raise ValueError(f"train.checkpoint.keep_steps={keep_steps!r} must be a tuple of positive step numbers.")
    if type(c.async_save) is not bool:
        raise ValueError(f"train.checkpoint.async_save={c.async_save!r} must be True or False.")
    if c.on_damage not in ON_DAMAGE:
        raise ValueError(f"train.checkpoint.on_damage={c.on_damage!r} is not one of {', '.join(ON_DAMAGE)}.")
    if t.eval_every or t.num_samples or "eval" in config:  # the evaluator owns config.eval
        evaluator_module(config).check_config(config)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Check a whole training config before anything heavy runs (nothing is generated, loaded or compiled; only the
    files evaluation tasks name are looked for): its sections, config.data, config.model, that the model and the data
    agree, the mixture's weights, the mesh and axis rules, then config.train / config.init / config.eval. ValueError
    in one sentence naming the first bad field and its value. The trainer and `python -m mm1_jax.sweep plan` both
    call this, so a study's job is refused exactly when its run would be."""
    # imported here, not above: config files import this module, and loading one should not pull in the models
    from mm1_jax.data import config as data_config  # pylint: disable=import-outside-toplevel
    from mm1_jax.models import registry  # pylint: disable=import-outside-toplevel
    from mm1_jax.models.inputs import input_spec  # pylint: disable=import-outside-toplevel
    from mm1_jax.train import sharding  # pylint: disable=import-outside-toplevel

    for key in config.keys():
        if key not in SECTIONS:
            raise ValueError(unknown_key("config", key, SECTIONS, what="a section", listed="the sections"))
    for section in ("model", "data"):
        if section not in config:
            raise ValueError(f"config.{section} is missing.")
    data_config.validate_data_config(config.data)
    registry.validate_model_config(config.model)
    input_spec(config.model, config.data)  # model <-> data: images per row, an image fits a row
    data_config.source_weights(config.data)
    if config.get("mesh") is not None:
        sharding.check_mesh_spec(config.mesh)
    sharding.axis_rules(config.get("axis_rules"))
    validate_train_config(config)
