"""Image preprocessing and splitting: the documented MM1.5 grid for a table of sizes, crops, overview, norms; uint8
pixels resized as transformers' image processors resize them."""

import numpy as np
from PIL import Image
import pytest

from mm1_jax.data import images
from mm1_jax.models.vit import NORMS

# (width, height) -> grid (n_h, n_w) for r=672, (n_min, n_max)=(4, 9), worked out by hand from MM1.5's dynamic
# image splitting (arXiv 2409.20566).
GRID_TABLE = [
    ((1344, 1344), (2, 2)),  # square, fills 2x2 exactly
    ((2016, 672), (1, 4)),  # wide 3:1: 1x4 holds it unscaled with one crop of padding; 1x3 has too few crops
    ((672, 2016), (4, 1)),  # tall 1:3
    ((100, 50), (1, 4)),  # tiny 2:1: every grid holds it; 4-crop canvases pad least; 1x4 and 2x2 fit it
    # equally well once scaled, fewer rows wins
    ((10000, 10000), (3, 3)),  # huge square: all grids downscale; 3x3 keeps the most pixels
    ((8000, 2000), (1, 4)),  # huge 4:1: 1x4, 1x5.. and 2x4 keep the same pixels; fewest crops wins
    ((900, 700), (2, 2)),  # a photo: 2x2 is the smallest canvas holding it unscaled
    ((1500, 700), (2, 3)),  # 2x3 is the smallest canvas at least 1500 wide and 700 high (1x3 has 3 crops)
]


@pytest.mark.parametrize("size,grid", GRID_TABLE)
def test_choose_grid_table(size, grid):
    assert images.choose_grid(*size, r=672, n_min=4, n_max=9) == grid


def test_inference_range_allows_bigger_grids():
    assert images.choose_grid(2688, 2688, r=672, n_min=4, n_max=16) == (4, 4)
    assert images.choose_grid(2688, 2688, r=672, n_min=4, n_max=9) == (3, 3)


def test_candidate_grids_bounds():
    grids = images.candidate_grids(4, 9)
    assert all(4 <= h * w <= 9 for h, w in grids)
    assert (1, 4) in grids and (3, 3) in grids and (1, 3) not in grids and (2, 5) not in grids
    with pytest.raises(ValueError, match="n_min=5, n_max=4"):
        images.candidate_grids(5, 4)


def _two_colour_image(w, h):
    """Left half red, right half blue."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(a)


def test_split_dynamic_crops_then_overview():
    img = _two_colour_image(256, 64)  # 4:1 -> grid (1, 4) with r=64
    pixels = images.split_image_dynamic(img, size=32, norm="siglip", r=64, n_min=4, n_max=9)
    assert pixels.shape == (5, 32, 32, 3) and pixels.dtype == np.uint8
    out = images.normalize(pixels, "siglip")
    # crops row-major: the first two are red, the last two blue; the last entry is the overview (both colours).
    red, blue = np.array([1, -1, -1], np.float32), np.array([-1, -1, 1], np.float32)
    np.testing.assert_allclose(out[0].mean((0, 1)), red, atol=0.02)
    np.testing.assert_allclose(out[3].mean((0, 1)), blue, atol=0.02)
    np.testing.assert_allclose(out[4][:, :4].mean((0, 1)), red, atol=0.05)
    np.testing.assert_allclose(out[4][:, -4:].mean((0, 1)), blue, atol=0.05)


def test_split_dynamic_pads_with_mean_colour():
    img = _two_colour_image(64, 32)  # 2:1 with r=64 and exactly 4 crops: grid 1x4, image scaled x2 fills crops 0-1
    pixels = images.split_image_dynamic(img, size=64, norm="clip", r=64, n_min=4, n_max=4)
    assert pixels.shape == (5, 64, 64, 3)
    np.testing.assert_array_equal(pixels[2], np.broadcast_to([123, 117, 104], (64, 64, 3)))  # CLIP's mean, rounded
    np.testing.assert_array_equal(pixels[3], pixels[2])
    out = images.normalize(pixels, "clip")
    # zero after normalising (the mean colour) up to the uint8 rounding: < 0.5/255 per channel before dividing by std
    assert np.all(np.abs(out[2]) < 0.5 / 255 / NORMS["clip"][1])
    red = images.normalize(np.array([[[255, 0, 0]]], np.uint8), "clip")[0, 0]
    np.testing.assert_allclose(out[0].mean((0, 1)), red, atol=0.05)


@pytest.mark.parametrize("norm,colour", [("clip", (123, 117, 104)), ("siglip", (128, 128, 128)),
                                         ("imagenet", (124, 116, 104))])
def test_pad_colour_is_the_mean_within_half_a_level(norm, colour):
    """The canvas padding in uint8: the mean colour rounded, at most 0.5/255 from it per channel (exactly 0.5/255 for
    SigLIP's 127.5, rounded half to even)."""
    assert images.pad_colour(norm) == colour
    mean = NORMS[norm][0].astype(np.float64)
    assert np.all(np.abs(np.array(colour) / 255 - mean) <= 0.5 / 255 + 1e-9)


def test_split_dynamic_resized_crops_are_uint8_resizes_of_the_canvas():
    """r != size: each r x r crop of the padded canvas is resized in uint8 (PIL bicubic), as an image processor would
    resize it; the padding crop stays the pad colour exactly."""
    img = _two_colour_image(60, 30)  # r=40, n=(4, 4): grid 1x4, the image scaled to 80 x 40 fills crops 0-1
    pixels = images.split_image_dynamic(img, size=16, norm="siglip", r=40, n_min=4, n_max=4)
    canvas = np.zeros((40, 160, 3), np.uint8)
    canvas[:] = images.pad_colour("siglip")
    canvas[:, :80] = np.asarray(img.resize((80, 40), Image.BICUBIC))
    for j in range(4):
        want = np.asarray(Image.fromarray(canvas[:, 40 * j:40 * (j + 1)]).resize((16, 16), Image.BICUBIC))
        np.testing.assert_array_equal(pixels[j], want)
    np.testing.assert_array_equal(pixels[3], 128)
    np.testing.assert_array_equal(pixels[4], np.asarray(img.resize((16, 16), Image.BICUBIC)))


def test_one_by_one_grid_has_no_overview():
    out = images.split_image_dynamic(_two_colour_image(64, 64), size=64, norm="clip", r=64, n_min=1, n_max=1)
    assert out.shape == (1, 64, 64, 3)


def test_split_mm1_four_crops_and_overview():
    pixels = images.split_image_mm1(_two_colour_image(100, 100), size=16)
    assert pixels.shape == (5, 16, 16, 3) and pixels.dtype == np.uint8
    out = images.normalize(pixels, "siglip")
    np.testing.assert_allclose(out[0].mean((0, 1)), [1, -1, -1], atol=0.02)  # top-left red
    np.testing.assert_allclose(out[3].mean((0, 1)), [-1, -1, 1], atol=0.02)  # bottom-right blue
    np.testing.assert_array_equal(pixels[4], images.whole_image(_two_colour_image(100, 100), 16))


def test_normalize_clip_siglip_and_imagenet():
    white = np.full((1, 1, 3), 255, np.uint8)
    np.testing.assert_allclose(images.normalize(white, "siglip")[0, 0], [1, 1, 1])
    np.testing.assert_allclose(
        images.normalize(white, "clip")[0, 0],
        (1 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711]),
        rtol=1e-6,
    )
    # AIMv1: torchvision's ImageNet statistics (apple/ml-aim, aim-v1/aim/v1/torch/data.py)
    np.testing.assert_allclose(images.normalize(white, "imagenet")[0, 0],
                               (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-6)
    with pytest.raises(ValueError, match="'imagenett'"):
        images.normalize(white, "imagenett")


def _hf_processor(norm: str, size: int):
    """transformers' PIL image processor of the encoder family, resizing to size x size without cropping."""
    transformers = pytest.importorskip("transformers")
    name = {"clip": "CLIPImageProcessor", "siglip": "SiglipImageProcessor"}[norm]
    cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name)
    kwargs = dict(size={"height": size, "width": size}, resample=Image.BICUBIC)
    return cls(**kwargs, do_center_crop=False) if norm == "clip" else cls(**kwargs)


@pytest.mark.parametrize("norm", ["clip", "siglip"])
def test_whole_image_normalised_equals_transformers_processor(norm):
    """uint8 resize here + normalising (`normalize`, the model's arithmetic) = CLIPImageProcessor / SiglipImageProcessor
    (resize the 8-bit image, then rescale and normalise)."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(50, 70, 3), dtype=np.uint8))
    pixels = images.whole_image(img, 32)
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    want = _hf_processor(norm, 32)(img, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
    np.testing.assert_allclose(images.normalize(pixels, norm), want, atol=1e-6)


def test_decode_corrupt_bytes_raises_value_error():
    with pytest.raises(ValueError, match="cannot decode image"):
        images.decode_image(b"\xff\xd8\xff not a jpeg")


def test_pixel_dtype_keeps_uint8_and_refuses_a_mix():
    """uint8 pixels stay uint8 (the model normalises them), normalised floats are float32, a mix is refused: the
    one check that prompts, generation requests and `pretrained` batches share."""
    u8, f64 = np.zeros((2, 4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float64)
    assert images.pixel_dtype([u8, u8]) == np.uint8
    assert images.pixel_dtype([f64]) == np.float32
    assert images.pixel_dtype([]) == np.float32
    with pytest.raises(ValueError, match="^a prompt's images mix uint8 pixels and float"):
        images.pixel_dtype([u8, f64], "a prompt's images")
