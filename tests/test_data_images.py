"""Image preprocessing and splitting: the documented MM1.5 grid for a table of sizes, crops, overview, norms."""

import numpy as np
from PIL import Image
import pytest

from mm1_jax.data import images

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
    out = images.split_image_dynamic(img, size=32, norm="siglip", r=64, n_min=4, n_max=9)
    assert out.shape == (5, 32, 32, 3)
    # crops row-major: the first two are red, the last two blue; the last entry is the overview (both colours).
    red, blue = np.array([1, -1, -1], np.float32), np.array([-1, -1, 1], np.float32)
    np.testing.assert_allclose(out[0].mean((0, 1)), red, atol=0.02)
    np.testing.assert_allclose(out[3].mean((0, 1)), blue, atol=0.02)
    np.testing.assert_allclose(out[4][:, :4].mean((0, 1)), red, atol=0.05)
    np.testing.assert_allclose(out[4][:, -4:].mean((0, 1)), blue, atol=0.05)


def test_split_dynamic_pads_with_mean_colour():
    img = _two_colour_image(64, 32)  # 2:1 with r=64 and exactly 4 crops: grid 1x4, image scaled x2 fills crops 0-1
    out = images.split_image_dynamic(img, size=64, norm="clip", r=64, n_min=4, n_max=4)
    assert out.shape == (5, 64, 64, 3)
    np.testing.assert_array_equal(out[2], 0.0)  # padding = zeros after normalising (the mean colour)
    np.testing.assert_array_equal(out[3], 0.0)
    red = images.normalize(np.array([[[255, 0, 0]]], np.uint8), "clip")[0, 0]
    np.testing.assert_allclose(out[0].mean((0, 1)), red, atol=0.05)


def test_one_by_one_grid_has_no_overview():
    out = images.split_image_dynamic(_two_colour_image(64, 64), size=64, norm="clip", r=64, n_min=1, n_max=1)
    assert out.shape == (1, 64, 64, 3)


def test_split_mm1_four_crops_and_overview():
    out = images.split_image_mm1(_two_colour_image(100, 100), size=16, norm="siglip")
    assert out.shape == (5, 16, 16, 3)
    np.testing.assert_allclose(out[0].mean((0, 1)), [1, -1, -1], atol=0.02)  # top-left red
    np.testing.assert_allclose(out[3].mean((0, 1)), [-1, -1, 1], atol=0.02)  # bottom-right blue
    np.testing.assert_allclose(out[4], images.whole_image(_two_colour_image(100, 100), 16, "siglip"))


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


def test_decode_corrupt_bytes_raises_value_error():
    with pytest.raises(ValueError, match="cannot decode image"):
        images.decode_image(b"\xff\xd8\xff not a jpeg")
