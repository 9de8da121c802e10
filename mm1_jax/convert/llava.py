"""LLaVA-OneVision, LLaVA-NeXT and LLaVA (LLaVA-NeXT-Interleave) checkpoints <-> the mm1_jax `Llava` model.

  vision_tower.*                          (SigLIP / CLIP vision transformer) -> encoder/*  (`convert.vit_weights`)
  multi_modal_projector.linear_{1,2}.{weight [out, in], bias}            -> projector/layers_{0,2}/{kernel, bias}
  image_newline [D]  (LLaVA-NeXT, LLaVA-OneVision)                       -> image_newline
  language_model.model.*, language_model.lm_head.weight                  -> decoder/*  (`convert.llama`: Qwen2 / Llama)
Checkpoints name these three ways, all read (`checkpoint_name` maps them to the names above): the released llava-hf
files (`vision_tower.vision_model.*`, `language_model.model.*`, `language_model.lm_head.weight`), transformers 4.5x
saves (`model.vision_tower.vision_model.*`, `model.language_model.*`, `model.multi_modal_projector.*`,
`model.image_newline`, `lm_head.weight`) and transformers 5 saves (the names above), which the way back writes.

config.json (LlavaOnevisionConfig / LlavaNextConfig / LlavaConfig): `vision_config` (SigLIP or CLIP), `text_config`
(Qwen2 or Llama), image_token_index, vision_feature_layer (one index or a list), vision_feature_select_strategy,
projector_hidden_act ('gelu' only) and multimodal_projector_bias (true only), image_grid_pinpoints, and for
LLaVA-OneVision vision_aspect_ratio 'anyres_max_N'. A field left out takes transformers' default for the model type.
"""
from __future__ import annotations

from typing import Any, Mapping

import ml_collections
import numpy as np

from mm1_jax.convert import llama, vit_weights
from mm1_jax.models import llava

MODEL_TYPES = ("llava_onevision", "llava_next", "llava")
ARCHITECTURES = ("LlavaOnevisionForConditionalGeneration", "LlavaNextForConditionalGeneration",
                 "LlavaForConditionalGeneration")
KIND = "llava"
_ARCHITECTURE = dict(zip(MODEL_TYPES, ARCHITECTURES))

# transformers' defaults (configuration_llava_onevision.py / configuration_llava_next.py / configuration_llava.py)
_ONEVISION_PINPOINTS = [[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)]
_DEFAULTS = {
    "llava_onevision": dict(image_token_index=151646, vision_feature_layer=-1, vision_feature_select_strategy="full",
                            image_grid_pinpoints=_ONEVISION_PINPOINTS, vision_aspect_ratio="anyres_max_9",
                            vision_model_type="siglip_vision_model", text_model_type="qwen2"),
    "llava_next": dict(image_token_index=32000, vision_feature_layer=-2, vision_feature_select_strategy="default",
                       image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
                       vision_model_type="clip_vision_model", text_model_type="llama"),
    "llava": dict(image_token_index=32000, vision_feature_layer=-2, vision_feature_select_strategy="default",
                  vision_model_type="clip_vision_model", text_model_type="llama"),
}
_VISION_TYPES = ("siglip_vision_model", "clip_vision_model")
_TEXT_TYPES = ("qwen2", "llama")


def _field(hf: dict, name: str, default: Any) -> Any:
    value = hf.get(name)
    return default if value is None else value


def _part(section: str, read: Any) -> Any:
    """`read()`, its errors said as errors of config.json's `section`."""
    try:
        return read()
    except KeyError as e:
        raise ValueError(f"config.json {section} lacks the field {e.args[0]!r}.") from None
    except ValueError as e:
        message = str(e)
        if message.startswith("config.json "):
            message = message[len("config.json "):]
        raise ValueError(f"config.json {section}: {message}") from None


def config_from_hf(hf: dict) -> ml_collections.ConfigDict:
    """Our `Llava` config from the checkpoint's config.json; one sentence naming the first field we cannot model."""
    style = hf.get("model_type")
    if style not in MODEL_TYPES:
        architectures = set(hf.get("architectures") or ())
        style = next((t for t, a in _ARCHITECTURE.items() if a in architectures), None)
    if style is None:
        raise ValueError(f"config.json model_type={hf.get('model_type')!r} is not one of {', '.join(MODEL_TYPES)}.")
    defaults = _DEFAULTS[style]
    vision = dict(hf.get("vision_config") or {})
    if not vision:
        raise ValueError("config.json has no vision_config; the converter reads the encoder's sizes from it.")
    vision.setdefault("model_type", defaults["vision_model_type"])
    if vision["model_type"] not in _VISION_TYPES:
        raise ValueError(f"config.json vision_config.model_type={vision['model_type']!r} is not supported "
                         f"({', '.join(_VISION_TYPES)}).")
    text = dict(hf.get("text_config") or {})
    if not text:
        raise ValueError("config.json has no text_config; the converter reads the decoder's sizes from it.")
    text.setdefault("model_type", defaults["text_model_type"])
    if text["model_type"] not in _TEXT_TYPES:
        raise ValueError(f"config.json text_config.model_type={text['model_type']!r} is not supported "
                         f"({', '.join(_TEXT_TYPES)}).")
    act = _field(hf, "projector_hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(f"config.json projector_hidden_act={act!r} is not supported (the projector uses exact GELU, "
                         "'gelu').")
    if not _field(hf, "multimodal_projector_bias", True):
        raise ValueError("config.json multimodal_projector_bias=false is not supported (the projector has biases).")
    select = _field(hf, "vision_feature_select_strategy", defaults["vision_feature_select_strategy"])
    if select not in llava.FEATURE_SELECT:
        raise ValueError(f"config.json vision_feature_select_strategy={select!r} is not one of "
                         f"{', '.join(llava.FEATURE_SELECT)}.")
    layers = _field(hf, "vision_feature_layer", defaults["vision_feature_layer"])
    layers = [layers] if isinstance(layers, int) else list(layers)
    depth = vision.get("num_hidden_layers")
    if not layers or any(not isinstance(i, int) or depth is not None and not -(depth + 1) <= i <= depth
                         for i in layers):
        raise ValueError(f"config.json vision_feature_layer={_field(hf, 'vision_feature_layer', None)!r} is not a "
                         f"hidden-state index (or list of them) of the {depth}-layer vision tower.")
    encoder = _part("vision_config", lambda: vit_weights.vit_from_hf_config(
        {"vision_config": vision}, feature_layer=layers[0], feature_norm=False, drop_class_token=False))
    decoder = _part("text_config", lambda: llama.config_from_hf(text))
    decoder.tie_embeddings = bool(hf.get("tie_word_embeddings") or text.get("tie_word_embeddings"))
    token = hf.get("image_token_index", hf.get("image_token_id"))
    token = defaults["image_token_index"] if token is None else token
    if not isinstance(token, int) or not 0 <= token < decoder.vocab_size:
        raise ValueError(f"config.json image_token_index={token!r} is not a token id of the {decoder.vocab_size}-token "
                         "vocabulary.")
    cfg = ml_collections.ConfigDict(dict(
        kind="llava", style=style, encoder=encoder.to_dict(), feature_layers=tuple(layers), feature_select=select,
        decoder=decoder.to_dict(), image_token_id=token, image_grid_pinpoints=[], anyres_max=0, dtype="float32"))
    if style != "llava":
        points = _field(hf, "image_grid_pinpoints", defaults["image_grid_pinpoints"])
        tile = encoder.image_size
        bad = [p for p in points if not (isinstance(p, (list, tuple)) and len(p) == 2
                                         and all(isinstance(v, int) and v > 0 and v % tile == 0 for v in p))]
        if bad or not points:
            raise ValueError(f"config.json image_grid_pinpoints holds {bad[0] if bad else 'nothing'}, not "
                             f"[height, width] multiples of vision_config.image_size={tile}.")
        cfg.image_grid_pinpoints = [list(p) for p in points]
    if style == "llava_onevision":
        try:
            cfg.anyres_max = llava.parse_anyres_max(_field(hf, "vision_aspect_ratio", defaults["vision_aspect_ratio"]))
        except ValueError as e:
            raise ValueError(f"config.json {e}") from None
    llava.validate_llava_config(cfg)
    return cfg


def hf_config_to(cfg: ml_collections.ConfigDict) -> dict:
    """config.json for our config, as transformers writes it for the style's class."""
    layers = list(cfg.feature_layers)
    out = dict(model_type=cfg.style, architectures=[_ARCHITECTURE[cfg.style]],
               vision_config=vit_weights.hf_config_to(cfg.encoder), text_config=llama.hf_config_to(cfg.decoder),
               image_token_index=cfg.image_token_id, vision_feature_layer=layers[0] if len(layers) == 1 else layers,
               vision_feature_select_strategy=cfg.feature_select, projector_hidden_act="gelu",
               multimodal_projector_bias=True, tie_word_embeddings=bool(cfg.decoder.tie_embeddings))
    out["vision_config"].pop("architectures", None)
    out["text_config"].pop("architectures", None)
    if cfg.style != "llava":
        out["image_grid_pinpoints"] = [list(p) for p in cfg.image_grid_pinpoints]
    if cfg.style == "llava_onevision":
        out["vision_aspect_ratio"] = f"anyres_max_{cfg.anyres_max}"
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tensors
# ----------------------------------------------------------------------------------------------------------------
def checkpoint_name(name: str) -> str:
    """The name of a checkpoint tensor in the layout `params_to_hf` writes (module docstring)."""
    if name.startswith("model."):
        name = name[len("model."):]
    if name.startswith("lm_head."):
        return "language_model." + name
    if name.startswith("language_model.") and not name.startswith(("language_model.model.",
                                                                    "language_model.lm_head.")):
        return "language_model.model." + name[len("language_model."):]
    if name.startswith("vision_tower.vision_model."):
        return "vision_tower." + name[len("vision_tower.vision_model."):]
    return name


class _Under(Mapping):
    """The tensors of `state` under `prefix`, prefix removed (read lazily)."""

    def __init__(self, state: Mapping[str, Any], prefix: str):
        self._state, self._prefix = state, prefix
        self._names = [k[len(prefix):] for k in state.keys() if k.startswith(prefix)]

    def __getitem__(self, name: str) -> Any:
        return self._state[self._prefix + name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _encoder_cfg(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(cfg.encoder))


def hf_to_params(state: Mapping[str, np.ndarray], cfg: ml_collections.ConfigDict) -> dict:
    """{'encoder', 'projector', 'decoder'(, 'image_newline')} numpy params (names as `checkpoint_name` gives them)."""
    params = {
        "encoder": vit_weights.hf_vit_to_params(_Under(state, "vision_tower."), _encoder_cfg(cfg)),
        "projector": {f"layers_{2 * j}": {"kernel": np.asarray(state[f"multi_modal_projector.linear_{j + 1}.weight"]).T,
                                          "bias": np.asarray(state[f"multi_modal_projector.linear_{j + 1}.bias"])}
                      for j in range(2)},
        "decoder": llama.hf_to_params(state, cfg.decoder, prefix="language_model."),
    }
    if cfg.style != "llava":
        params["image_newline"] = np.asarray(state["image_newline"])
    return params


def params_to_hf(params: Mapping[str, Any], cfg: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """The inverse of `hf_to_params`, with transformers 5's names."""
    out = {"vision_tower." + k: v for k, v in vit_weights.params_to_hf(params["encoder"], _encoder_cfg(cfg)).items()}
    for j in range(2):
        layer = params["projector"][f"layers_{2 * j}"]
        out[f"multi_modal_projector.linear_{j + 1}.weight"] = np.asarray(layer["kernel"]).T
        out[f"multi_modal_projector.linear_{j + 1}.bias"] = np.asarray(layer["bias"])
    out.update(llama.params_to_hf(params["decoder"], cfg.decoder, prefix="language_model."))
    if cfg.style != "llava":
        out["image_newline"] = np.asarray(params["image_newline"])
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def build_module(cfg: ml_collections.ConfigDict):
    return llava.build_llava(cfg)


def param_shapes(cfg: ml_collections.ConfigDict) -> dict:
    """Our parameter shapes, nothing allocated."""
    from mm1_jax.convert import init_shapes  # pylint: disable=import-outside-toplevel

    return init_shapes(build_module(cfg), **llava.example_inputs(cfg))


def ignored(name: str, cfg: ml_collections.ConfigDict) -> bool:
    """A tied decoder's checkpoint may still carry its lm_head (a copy of the embedding)."""
    return (bool(cfg.decoder.tie_embeddings) and name == "language_model.lm_head.weight"
            or name.endswith(("position_ids", "rotary_emb.inv_freq")))

