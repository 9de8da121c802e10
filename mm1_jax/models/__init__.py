"""Models: build any MM1 variant or an mPLUG-Owl3 from `config.model` (`model.kind`)."""
from mm1_jax.models.registry import build_decoder, build_model, image_route, image_tokens, validate_model_config

__all__ = ["build_decoder", "build_model", "image_route", "image_tokens", "validate_model_config"]
