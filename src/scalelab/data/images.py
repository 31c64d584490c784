"""Images in: files and base64 data URLs read with Pillow, checked, and turned into pixel values.

Every path (training, evaluation in-process, the server) goes through `pixel_values`, which is
Hugging Face's SigLIP image processor configured for the model: the exported processor does the
same, so the same image gives the same logits everywhere. An image over `MAX_PIXELS` is refused
(a decompression bomb, or a mistake), not silently shrunk.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from scalelab.errors import UserError

MAX_PIXELS = 4096 * 4096
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow refuses bigger ones before decoding them


def _checked(image: Image.Image, where: str) -> Image.Image:
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise UserError(f"{where}: image of {w}x{h} pixels is over the limit of {MAX_PIXELS:,} pixels")
    return image.convert("RGB")


def open_image(path: str | Path, where: str | None = None) -> Image.Image:
    """An image file as RGB; a missing, unreadable or oversized one is named."""
    path = Path(path)
    where = where or str(path)
    if not path.is_file():
        raise UserError(f"{where}: image {path} not found")
    try:
        with Image.open(path) as im:
            im.load()
            return _checked(im, where)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise UserError(f"{where}: cannot read image {path} ({' '.join(str(e).split())})") from None


def image_bytes(image: Image.Image) -> bytes:
    """PNG bytes of an image: what requests carry and cache keys hash."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(image_bytes(image)).decode("ascii")


def from_data_url(url: str, where: str = "image_url") -> Image.Image:
    """A base64 `data:image/...` URL as an image; any other URL is refused (nothing is fetched)."""
    if not url.startswith("data:"):
        raise UserError(f"{where}: only base64 data URLs are accepted (data:image/png;base64,...); this server "
                        "fetches nothing from the network")
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or not header.endswith(";base64"):
        raise UserError(f"{where}: expected data:image/<type>;base64,<data>")
    try:
        raw = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            return _checked(im, where)
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise UserError(f"{where}: not a readable image ({' '.join(str(e).split())})") from None


def image_processor(size: int):
    """The processor a VLM of input size `size` reads images with (and exports)."""
    from transformers import SiglipImageProcessorPil  # the Pillow backend: torchvision is not installed

    return SiglipImageProcessorPil(do_resize=True, size={"height": size, "width": size}, do_rescale=True,
                                rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3,
                                image_std=[0.5] * 3)


def pixel_values(images: list[Image.Image], processor) -> torch.Tensor:
    """(images, 3, size, size) float tensor."""
    return processor(images=images, return_tensors="pt")["pixel_values"]
