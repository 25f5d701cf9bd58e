"""Image bytes in, RGB pixels out, with the limits checked before any decoding work.

The header of JPEG, PNG and BMP carries the image size, so a decompression bomb (a small
file that decodes to gigapixels) is refused from its first bytes instead of exhausting
memory, and so is a side OpenCV would refuse with an exception (over :data:`MAX_SIDE`).
Preprocessing records exactly how the model input maps back to the original image.

What phones and cameras really send is accepted as browsers show it: a JPEG's EXIF
orientation is applied (by us, after decoding with OpenCV told to ignore it, so the decoded
size can still be checked against the header), and bytes after a JPEG's end marker are
ignored. Any decoder failure is a 400, never an exception out of here.
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
_SOS, _APP1 = 0xDA, 0xE1
_EXIF = b"Exif\0\0"
_ORIENTATION_TAG = 0x0112
#: Largest width or height: JPEG's own maximum; OpenCV refuses sides over 2**20 with an error.
MAX_SIDE = 65535
# BMP info header sizes: BITMAPCOREHEADER (16-bit sizes), then the 32-bit ones.
_BMP_CORE, _BMP_INFO = 12, frozenset({16, 40, 52, 56, 64, 108, 124})

# OpenCV logs its own decoder errors to stderr, unstructured; the caller reports them as 400s.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


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
    """What the first bytes say. ``width`` and ``height`` are the stored pixels; the EXIF
    ``orientation`` (1 to 8, JPEG only) says how they are shown."""

    format: ImageFormat
    width: int
    height: int
    orientation: int = 1
    #: Where a JPEG's entropy-coded data starts (its end marker must come after it).
    scan_start: int = 0

    @property
    def shown_size(self) -> tuple[int, int]:
        """(width, height) as displayed: orientations 5 to 8 turn the image by 90 degrees."""
        return ((self.height, self.width) if self.orientation >= 5
                else (self.width, self.height))


def _exif_orientation(segment: bytes) -> int:
    """The orientation tag of an APP1 Exif segment's first IFD; 1 when absent or malformed."""
    tiff = segment[len(_EXIF):]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(tiff) - 11), 12):
        tag, kind, _, value = struct.unpack(order + "HHIH", tiff[entry:entry + 10])
        if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_header(data: bytes) -> ImageHeader:
    """Walk the marker segments up to the first scan: size, orientation, scan start."""
    size: tuple[int, int] | None = None
    orientation, i = 1, 2
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
        segment = data[i + 4:i + 2 + length]
        if marker in _SOF_MARKERS and size is None and len(segment) >= 5:
            height, width = struct.unpack(">HH", segment[1:5])
            size = (width, height)
        elif marker == _APP1 and segment.startswith(_EXIF):
            orientation = _exif_orientation(segment)
        elif marker == _SOS:
            if size is None:
                break
            return ImageHeader("jpeg", size[0], size[1], orientation, i + 2 + length)
        i += 2 + length
    if size is None:
        raise ImageError("truncated JPEG: no frame header")
    raise ImageError("truncated JPEG: no image data")


def _bmp_size(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise ImageError("truncated BMP header")
    (header,) = struct.unpack("<I", data[14:18])
    if header == _BMP_CORE:
        return struct.unpack("<HH", data[18:22])
    if header not in _BMP_INFO:
        raise ImageError(f"unsupported BMP info header of {header} bytes")
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def probe(data: bytes) -> ImageHeader:
    """Format and size from the first bytes; raises ImageError (400/413/415) when it cannot
    or the size is over what any decoder takes."""
    if not data:
        raise ImageError("empty body: send the image bytes")
    if data[:3] == b"\xff\xd8\xff":
        header = _jpeg_header(data)
    elif data[:8] == _PNG_MAGIC:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("truncated PNG: no IHDR chunk")
        header = ImageHeader("png", *struct.unpack(">II", data[16:24]))
    elif data[:2] == b"BM":
        header = ImageHeader("bmp", *_bmp_size(data))
    else:
        raise UnsupportedImage("unsupported image format: send JPEG, PNG or BMP")
    if header.width <= 0 or header.height <= 0:
        raise ImageError(f"invalid image size {header.width}x{header.height}")
    if max(header.width, header.height) > MAX_SIDE:
        raise ImageTooLarge(f"image is {header.width}x{header.height}: a side is over "
                            f"{MAX_SIDE} pixels")
    return header


def check_complete(data: bytes, header: ImageHeader) -> None:
    """Refuse a cut-off file: OpenCV decodes a truncated JPEG into a half-grey frame.

    A JPEG's end marker is looked for after the start of its scan (an EXIF thumbnail before
    it has its own), so bytes after the end marker, which browsers ignore, do not matter."""
    if header.format == "jpeg" and data.find(b"\xff\xd9", header.scan_start) < 0:
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


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as shown under an EXIF orientation, the same operations OpenCV applies."""
    if orientation >= 5:
        image = image.transpose(1, 0, 2)
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    if flip is None:
        return np.ascontiguousarray(image)
    return cv2.flip(np.ascontiguousarray(image), flip)


def decode(data: bytes, header: ImageHeader,
           min_size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB uint8 HxWx3 pixels, as shown, of an image that passed :func:`inspect`.

    With ``min_size`` (the model's input width, height), a JPEG much larger than the model
    input is decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself (DCT scaling): the
    model would shrink it anyway, and decoding is the largest cost of a request. Boxes are
    normalised, so they do not change; an odd edge is off by at most half an original pixel.
    """
    flag, factor = cv2.IMREAD_COLOR, 1
    if min_size is not None and header.format == "jpeg":
        shown_w, shown_h = header.shown_size
        for f, reduced in _REDUCED:
            if shown_w // f >= min_size[0] and shown_h // f >= min_size[1]:
                flag, factor = reduced, f
                break
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        bgr = None
    expected = (-(-header.height // factor), -(-header.width // factor))
    if bgr is None or bgr.ndim != 3 or bgr.shape[:2] != expected:
        raise ImageError(f"could not decode the {header.format.upper()} image")
    return orient(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), header.orientation)


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
