"""An image model's request for an endpoint: an encoded picture (PNG or JPEG bytes, what a
SageMaker image container reads as `image/png`, `image/jpeg` or `application/x-image`), or a
pixel tensor (a KServe v2 / Triton FP32 input). Seeded by the cell's seed, without torch (the
endpoint engines' clients do not load it): the same cell sends the same pixels.

The picture is seeded noise at the model's input size (model.image_size, else the
architecture's, else 224): noise does not compress, so a PNG of it is as large as PNG gets at
that size (about 3 bytes a pixel) and the server's decoding is not made easy. A photograph of
the same size is smaller; the row's engine_info gives the bytes sent (`payload_bytes`).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from bench.config.tasks import image_size

if TYPE_CHECKING:
    from bench.config.schema import CellConfig

IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
# ContentType each format may be sent as: its own, or the generic one SageMaker's built-in
# image algorithms take
CONTENT_TYPES = {"png": ("image/png", "application/x-image"), "jpeg": ("image/jpeg",)}
JPEG_QUALITY = 90  # a camera's or a web upload's usual setting


def channels(cell: CellConfig) -> int:
    return int(cell.model.architecture.get("num_channels") or 3)


def seeded_pixels(cell: CellConfig) -> Any:
    """size x size x channels bytes (uint8), seeded: one picture of the model's input size."""
    import numpy as np

    side = image_size(cell.model)
    rng = np.random.default_rng(cell.seed)
    return rng.integers(0, 256, size=(side, side, channels(cell)), dtype=np.uint8)


def encoded_image(cell: CellConfig, image_format: str) -> bytes:
    """The cell's picture encoded as `image_format` (png | jpeg) by Pillow."""
    from PIL import Image

    pixels = seeded_pixels(cell)
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    picture = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels[:, :, :3], mode=mode)
    out = io.BytesIO()
    if image_format == "jpeg":
        picture.save(out, format="JPEG", quality=JPEG_QUALITY)
    else:
        picture.save(out, format=IMAGE_FORMATS[image_format])
    return out.getvalue()


def pixel_tensor(cell: CellConfig, layout: str = "nchw") -> tuple[list[int], list[float]]:
    """(shape, flat data) of batch_size normalised images, channels first as transformers'
    image models take them (`nhwc`: channels last): standard normal values, seeded, rounded to
    4 decimals, which is finer than an 8-bit pixel's step after normalisation (1/255 over a
    standard deviation of ~0.25) and keeps the JSON body about 8 bytes a value."""
    import numpy as np

    side, depth = image_size(cell.model), channels(cell)
    shape = [cell.batch_size, depth, side, side]
    if layout == "nhwc":
        shape = [cell.batch_size, side, side, depth]
    rng = np.random.default_rng(cell.seed)
    values = rng.standard_normal(int(np.prod(shape)), dtype=np.float32)
    return shape, np.round(values, 4).tolist()
