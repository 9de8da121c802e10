"""What a model takes: the one owner of the model <-> data contract.

`input_spec(config.model)` answers, for any model config (MM1 or mPLUG-Owl3), how many tokens an image occupies in
the sequence (K slot tokens, or one placeholder when images reach the decoder through hyper attention), the encoder's
image size and pixel statistics (owned by the encoder's style) and how many images a row may hold. `example_batch`
builds a batch in the layout `mm1_jax.data` produces (zeros, for initialisation and shape inference): images are uint8
pixels, which the model normalises with `image_norm` on the device (`mm1.normalize_pixels`), so the pipeline's image
bytes are a quarter of float32's; `init_inputs` is the smallest call that initialises either kind. The data pipeline,
the trainer, the evaluation and the tools all take these from here.
"""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from mm1_jax.models import config as model_config
from mm1_jax.models import registry
from mm1_jax.models.vit import style_value


@dataclasses.dataclass(frozen=True)
class InputSpec:
    tokens_per_image: int  # K: sequence slots one image (or crop) occupies
    image_size: int  # encoder input side, pixels
    image_norm: str  # pixel statistics (mm1_jax.models.vit.NORMS): the model normalises with them; the data side
    # only pads split canvases with their mean colour
    max_images: int  # images (crops count one each) per row

    def pipeline_fields(self) -> dict:
        """The keyword arguments `mm1_jax.data.pipeline.build_pipeline` takes from the model."""
        return dict(tokens_per_image=self.tokens_per_image, image_size=self.image_size, image_norm=self.image_norm)


def input_spec(model_cfg: ml_collections.ConfigDict,
               data_cfg: ml_collections.ConfigDict | None = None) -> InputSpec:
    """The model's input contract; with `data_cfg`, also checks that the data config agrees with it."""
    spec = InputSpec(
        tokens_per_image=registry.image_tokens(model_cfg),
        image_size=int(model_cfg.encoder.image_size),
        image_norm=str(style_value(model_cfg.encoder, "image_norm")),
        max_images=int(model_config.get(model_cfg, "model", "max_images")),
    )
    if data_cfg is not None and int(data_cfg.get("max_images", spec.max_images)) != spec.max_images:
        raise ValueError(f"data.max_images={data_cfg.max_images} differs from model.max_images={spec.max_images}; "
                         "a packed row must hold exactly the images the model takes: set both to the same value.")
    if data_cfg is not None and spec.tokens_per_image + 2 > int(data_cfg.seq_len):
        raise ValueError(f"an image's {spec.tokens_per_image} tokens do not fit data.seq_len={data_cfg.seq_len}.")
    return spec


def example_batch(spec: InputSpec, batch_size: int, seq_len: int) -> dict[str, np.ndarray]:
    """Zeros in the batch layout of `mm1_jax.data` (one document per row, no image present)."""
    b, t, m, s = batch_size, seq_len, spec.max_images, spec.image_size
    return {"tokens": np.zeros((b, t), np.int32), "targets": np.zeros((b, t), np.int32),
            "loss_weights": np.zeros((b, t), np.float32), "segment_ids": np.ones((b, t), np.int32),
            "positions": np.tile(np.arange(t, dtype=np.int32), (b, 1)),
            "images": np.zeros((b, m, s, s, 3), np.uint8), "image_valid": np.zeros((b, m), bool),
            "image_token_index": np.full((b, t), -1, np.int32)}


def init_inputs(model_cfg: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """Keyword inputs of a small call that initialises `registry.build_model(model_cfg)` (shapes, parameter counts):
    MM1: `example_batch` of one 8-token row; Owl3: one placeholder token and one image."""
    spec = input_spec(model_cfg)
    if model_config.model_kind(model_cfg) == "owl3":
        token = model_config.get(model_cfg, "owl3", "image_token_id")
        token = 0 if token is None else int(token)
        return {"tokens": np.full((1, 1), token, np.int32),
                "images": np.zeros((1, spec.image_size, spec.image_size, 3), np.uint8), "image_token_id": token}
    return example_batch(spec, 1, 8)
