"""Hugging Face <-> mm1_jax conversion: one small module per model family, found by `model_type`.

A family is a module `mm1_jax/convert/<family>.py` (the family's name is the module's name) exposing

  MODEL_TYPES: tuple[str, ...]          the config.json `model_type` values it handles
  ARCHITECTURES: tuple[str, ...]        (optional) config.json `architectures` entries it handles
  KIND: str                             'encoder' | 'decoder' | 'connector' | 'owl3' | 'llava': what
                                        `mm1_jax.pretrained.load` wraps it as
  config_from_hf(hf_config: dict) -> ml_collections.ConfigDict      our config for that part
  hf_to_params(state: Mapping[str, np.ndarray], cfg) -> dict         nested dict of numpy arrays. `state` is lazy:
                                        each access reads one tensor from disk, so read each name once and keep
                                        only what goes into the result (conversion then streams)
  params_to_hf(params, cfg) -> dict[str, np.ndarray]                 the way back (names as transformers saves them)
  hf_config_to(cfg) -> dict                                          config.json for the way back
  build_module(cfg) -> flax.linen.Module                             the module the params belong to
and optionally
  param_shapes(cfg) -> nested dict of jax.ShapeDtypeStruct           our parameter shapes without allocating them
                                        (`init_shapes` below does it); with it, bad checkpoints get one error listing
                                        every missing, unexpected and mis-shaped tensor before anything is read
  ignored(name: str, cfg) -> bool       checkpoint tensors to skip silently (e.g. lm_head.weight when tied)
  recognises(hf_config: dict) -> bool   for configs without a `model_type` (HoneyBee's projector config)
  update_config_from_dir(cfg, src) -> cfg   fields that live beside config.json (Owl3: the image token id)
  checkpoint_name(name: str) -> str     the family's name for a checkpoint tensor, for models saved under several
                                        naming layouts (LLaVA: the llava-hf release, transformers 4.5x and 5 saves);
                                        the names checked and read are the renamed ones

Families are discovered: any module in this package with a `MODEL_TYPES` attribute is one, so adding a family is
adding a file. `hf_to_params` sees the checkpoint with its tensors' common prefix removed (a CLIP vision tower inside
CLIPModel is read as if it were CLIPVisionModel): the prefix is the one under which the names `params_to_hf` produces
are found.

A converted directory is `OUT/config.json` ({"family", "kind", "source_model_type", "dtype", "source_dtype",
"config": our config, "source_hf_config": the original config.json}) and `OUT/params/` (an orbax
StandardCheckpointer checkpoint, tensorstore). `mm1_jax.convert.checkpoint` writes and reads them; the command line
is `python -m mm1_jax.convert --src HF_DIR --dst OUT [--dtype float32|bfloat16]` and `--to-hf`.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any

REQUIRED = ("MODEL_TYPES", "KIND", "config_from_hf", "hf_to_params", "params_to_hf", "hf_config_to", "build_module")
GENERIC_KINDS = ("encoder", "decoder", "connector")


def _discover() -> tuple[dict[str, ModuleType], dict[str, str]]:
    """{family name: module} for every module of this package with MODEL_TYPES, and {name: import error}."""
    families, broken = {}, {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as e:  # noqa: BLE001  a family someone is still writing must not break the others
            broken[info.name] = f"{type(e).__name__}: {e}"
            continue
        if hasattr(module, "MODEL_TYPES"):
            missing = [name for name in REQUIRED if not hasattr(module, name)]
            if missing:
                broken[info.name] = f"lacks {', '.join(missing)}"
            else:
                families[info.name] = module
    return families, broken


def families() -> dict[str, ModuleType]:
    """{family name: module} of every family that imports."""
    return _discover()[0]


def family(name: str) -> ModuleType:
    """The family module called `name` (as recorded in a converted directory's config.json)."""
    found, broken = _discover()
    if name not in found:
        extra = f" ({broken[name]})" if name in broken else ""
        raise ValueError(f"family {name!r} is not available{extra}; the families are {', '.join(sorted(found))}.")
    return found[name]


def family_for(hf_config: dict[str, Any], where: str = "config.json") -> ModuleType:
    """The family that handles a transformers config dict: by model_type, then architectures, then `recognises`."""
    found, broken = _discover()
    model_type = hf_config.get("model_type")
    architectures = hf_config.get("architectures") or []
    for module in found.values():
        if model_type and model_type in module.MODEL_TYPES:
            return module
    for module in found.values():
        if set(architectures) & set(getattr(module, "ARCHITECTURES", ())):
            return module
    for module in found.values():
        if hasattr(module, "recognises") and module.recognises(hf_config):
            return module
    supported = "; ".join(f"{name} ({', '.join(m.MODEL_TYPES)})" for name, m in sorted(found.items()))
    note = f" (not importable: {'; '.join(f'{k}: {v}' for k, v in broken.items())})" if broken else ""
    raise ValueError(f"{where}: model_type={model_type!r} (architectures {architectures}) is not a supported "
                     f"family; supported: {supported}{note}.")


def init_shapes(module: Any, *example_args: Any, **example_kwargs: Any) -> dict:
    """`param_shapes` helper: the unboxed parameter shapes of `module.init(key, *example_args)`, nothing allocated."""
    import flax.linen as nn
    import jax

    variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *example_args, **example_kwargs))
    return nn.unbox(variables["params"])
