"""mPLUG-Owl3 image processing: 384 px bicubic, mean = std = 0.5, cut into a grid of crops plus a global view.

The release's processor (its Hugging Face files, e.g. mPLUG/mPLUG-Owl3-7B-240728; `init_processor` in
modeling_mplugowl3.py builds `mPLUGOwl3ImageProcessor(image_size=384)` with its default cut settings):

- The grid (image_processing_mplugowl3.py, `CutMixin` defaults: anchors 'grid_squ_6', strategy 'docowl', prompt 'v2'
  with a global view; `anchor_rank`): rows h, columns w from OWL3_GRIDS by the highest
  100 * IoU(grid box, grid box reshaped to the image's aspect) + IoU(grid box, image box), boxes anchored at the
  origin and a grid box w*size x h*size pixels. As it computes it, the reshaped box's height is a float32 product
  truncated to whole pixels (the boxes are integer tensors) and the first best grid wins ties. Every image is cut
  when cutting is on, small ones too (there is no size condition; `cut_prob` is read but never used).
- The pixels (`_process_image`): the image resized (PIL bicubic, through torchvision) to w*size x h*size and cut
  row-major, then the global view (the whole image resized to size x size, which is also what an uncut image is).
- The prompt (processing_mplugowl3.py `__call__`, the 'v2_global' template): each `<|image|>` becomes `cut_prompt`,
  one placeholder per crop and one for the global view, the text between placeholders tokenized as one piece.
- When it cuts (processing_mplugowl3.py `__call__`): `cut_enable` (default True) unless the call has videos, which
  force it off, so a video's frames are never cut (each `<|video|>` becomes one `<|image|>` per frame). Several
  images are not refused, but their prompts come out wrong: `_process_image` lists two shapes per image (its grid,
  then (1, 1) for its global view) and the processor takes the shape of the n-th placeholder from that list, so a
  second image gets a 1 x 1 cut prompt for a full grid of crops. The release's evaluation cuts single-image
  benchmarks only (evaluation/tasks/plans/all.yaml gives `cut_cfg` to MMBench, MM-Vet, POPE, AI2D and the VQA
  tasks, none to NLVR2, Q-Bench2, the interleave bench or the video tasks; general_task_pipeline2.py passes
  `cut_enable=bool(task.cut_cfg)`). `cuts_prompt` is that rule: the one image of a prompt with no video.

Pixels are uint8, resized as the release's processor resizes (PIL bicubic on the 8-bit image); the model normalises
them on the device with SigLIP's statistics (`mm1_jax.models.owl3.Owl3.encode_images`).
"""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

from mm1_jax.data.images import resize, whole_image

OWL3_GRIDS = ((2, 2), (1, 3), (1, 4), (3, 1), (4, 1), (2, 3), (3, 2))  # (rows, columns); no 1 x 1
IMAGE_TOKEN = "<|image|>"


def _iou(w1: float, h1: float, w2: float, h2: float, eps: float = 1e-5) -> float:
    """IoU of two boxes anchored at the origin."""
    inter = min(w1, w2) * min(h1, h2)
    return inter / (w1 * h1 + w2 * h2 - inter + eps)


def choose_cut_grid(width: int, height: int, size: int = 384) -> tuple[int, int]:
    """(rows, columns) of the crop grid for a width x height image."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is not positive.")
    scores = []
    for rows, cols in OWL3_GRIDS:
        gw, gh = cols * size, rows * size
        shaped_h = int(np.float32(height / width) * np.float32(gw))  # same aspect as the image, width gw
        scores.append(100 * _iou(gw, gh, gw, shaped_h) + _iou(gw, gh, width, height))
    return OWL3_GRIDS[int(np.argmax(scores))]


def cut_prompt(rows: int, cols: int, image_token: str = IMAGE_TOKEN) -> str:
    """The text that replaces one image's placeholder: a line per grid row, then the global view."""
    lines = [" ".join(f"subimg({i},{j}){image_token}" for j in range(cols)) for i in range(rows)]
    return f"Cut to {rows} rows {cols} columns with a global view\n" + "\n".join(lines) + f"\nglobal_view{image_token}"


def cuts_prompt(num_images: int, video: bool) -> bool:
    """Whether the release cuts a prompt's image: the prompt shows exactly one image and no video (see above)."""
    return num_images == 1 and not video


def process_image(img: Image.Image, size: int = 384, cut: bool = True) -> tuple[np.ndarray, tuple[int, int] | None]:
    """uint8 pixels [n, size, size, 3] (crops row-major then the global view; only the global view when cut=False,
    as the release does for video frames) and the grid (None when not cut)."""
    img = img.convert("RGB")
    whole = whole_image(img, size)[None]
    if not cut:
        return whole, None
    rows, cols = choose_cut_grid(*img.size, size=size)
    big = np.asarray(resize(img, cols * size, rows * size), np.uint8)
    crops = big.reshape(rows, size, cols, size, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, size, size, 3)
    return np.concatenate([crops, whole]), (rows, cols)


def process(text: str, images: list[Image.Image], size: int = 384, cut: bool = True,
            image_token: str = IMAGE_TOKEN) -> tuple[str, np.ndarray]:
    """(prompt with every placeholder expanded to its cut prompt, all uint8 pixels in placeholder order)."""
    parts = re.split(re.escape(image_token), text)
    if len(parts) - 1 != len(images):
        raise ValueError(f"the text has {len(parts) - 1} {image_token} placeholders but {len(images)} images were "
                         f"given.")
    out, pixels = parts[0], []
    for img, rest in zip(images, parts[1:]):
        px, grid = process_image(img, size, cut)
        pixels.append(px)
        out += (cut_prompt(*grid, image_token) if grid else image_token) + rest
    empty = np.zeros((0, size, size, 3), np.uint8)
    return out, np.concatenate(pixels) if pixels else empty
