"""Image bytes in, RGB pixels out, with the limits checked before any decoding work.

The header of JPEG, PNG and BMP carries the image size, so a decompression bomb (a small
file that decodes to gigapixels) is refused from its first bytes instead of exhausting
memory. Preprocessing records exactly how the model input maps back to the original image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

ImageFormat = Literal["jpeg", "png", "bmp"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageError(ValueError):
    """Bad image input; ``status`` is the HTTP status it maps to, ``kind`` the error label."""

    status = 400
    kind = "bad_image"


class UnsupportedImage(ImageError):
    status = 415
    kind = "unsupported_media"


class ImageTooLarge(ImageError):
    status = 413
    kind = "image_too_large"


@dataclass(frozen=True)
class ImageHeader:
    format: ImageFormat
    width: int
    height: int


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageError("corrupt JPEG: marker expected")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF_MARKERS:
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    raise ImageError("truncated JPEG: no frame header")


def probe(data: bytes) -> ImageHeader:
    """Format and size from the first bytes; raises ImageError (400/415) when it cannot."""
    if not data:
        raise ImageError("empty body: send the image bytes")
    if data[:3] == b"\xff\xd8\xff":
        width, height = _jpeg_size(data)
        fmt: ImageFormat = "jpeg"
    elif data[:8] == _PNG_MAGIC:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("truncated PNG: no IHDR chunk")
        width, height = struct.unpack(">II", data[16:24])
        fmt = "png"
    elif data[:2] == b"BM":
        if len(data) < 26:
            raise ImageError("truncated BMP header")
        width, height = struct.unpack("<ii", data[18:26])
        width, height, fmt = abs(width), abs(height), "bmp"
    else:
        raise UnsupportedImage("unsupported image format: send JPEG, PNG or BMP")
    if width <= 0 or height <= 0:
        raise ImageError(f"invalid image size {width}x{height}")
    return ImageHeader(fmt, width, height)


def check_complete(data: bytes, header: ImageHeader) -> None:
    """Refuse a cut-off file: OpenCV decodes a truncated JPEG into a half-grey frame."""
    if header.format == "jpeg" and b"\xff\xd9" not in data[-1024:]:
        raise ImageError("truncated JPEG: no end-of-image marker")
    if header.format == "png" and b"IEND" not in data[-32:]:
        raise ImageError("truncated PNG: no IEND chunk")


def inspect(data: bytes, max_pixels: int) -> ImageHeader:
    """Everything that can be refused without decoding: format, size limit, completeness."""
    header = probe(data)
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise ImageTooLarge(f"image is {header.width}x{header.height} = {pixels} pixels, over "
                            f"the limit of {max_pixels}")
    check_complete(data, header)
    return header


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2))


def decode(data: bytes, header: ImageHeader,
           min_size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 pixels of an image that passed :func:`inspect`.

    With ``min_size`` (the model's input width, height), a JPEG much larger than the model
    input is decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself (DCT scaling): the
    model would shrink it anyway, and decoding is the largest cost of a request. Boxes are
    normalised, so they do not change; an odd edge is off by at most half an original pixel.
    """
    flag, factor = cv2.IMREAD_COLOR, 1
    if min_size is not None and header.format == "jpeg":
        for f, reduced in _REDUCED:
            if header.width // f >= min_size[0] and header.height // f >= min_size[1]:
                flag, factor = reduced, f
                break
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    expected = (-(-header.height // factor), -(-header.width // factor))
    if bgr is None or bgr.shape[:2] != expected:
        raise ImageError(f"could not decode the {header.format.upper()} image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class InputSpec:
    """What a model wants: size, layout, colour order, value range and how to resize."""

    width: int
    height: int
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color_order: Literal["RGB", "BGR"] = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)
    resize: Literal["letterbox", "stretch", "none"] = "letterbox"
    pad_value: int = 114
    dtype: str = "float32"


@dataclass(frozen=True)
class Geometry:
    """How model-input pixels map back to the original image (letterbox or stretch)."""

    image_width: int
    image_height: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def normalise(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes in model-input pixels to xyxy normalised to the original image."""
        out = np.asarray(boxes, np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x / self.image_width
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y / self.image_height
        return np.clip(out, 0.0, 1.0)


def prepare(image: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Geometry]:
    """An RGB uint8 HxWx3 image as the model's input tensor, and the way back.

    Letterbox keeps the aspect ratio and pads evenly; the scale recorded is the one the
    resize really applied per axis (rounded sizes), so boxes map back exactly.
    """
    h, w = image.shape[:2]
    if spec.resize == "none":
        canvas, geometry = image, Geometry(w, h, 1.0, 1.0, 0.0, 0.0)
    elif spec.resize == "stretch":
        canvas = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        geometry = Geometry(w, h, spec.width / w, spec.height / h, 0.0, 0.0)
    else:
        ratio = min(spec.width / w, spec.height / h)
        nw, nh = max(1, round(w * ratio)), max(1, round(h * ratio))
        left, top = (spec.width - nw) // 2, (spec.height - nh) // 2
        canvas = np.full((spec.height, spec.width, 3), spec.pad_value, np.uint8)
        canvas[top:top + nh, left:left + nw] = (
            image if (nw, nh) == (w, h)
            else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR))
        geometry = Geometry(w, h, nw / w, nh / h, float(left), float(top))
    if spec.color_order == "BGR":
        canvas = canvas[..., ::-1]
    if spec.dtype == "uint8":
        tensor = np.ascontiguousarray(canvas)
    else:
        low, high = spec.value_range
        tensor = canvas.astype(np.float32) * np.float32((high - low) / 255.0)
        if low:
            tensor += np.float32(low)
        tensor = tensor.astype(spec.dtype, copy=False)
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None]), geometry
