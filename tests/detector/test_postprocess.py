"""Shared post-processing and image handling: thresholds, NMS, the cap, exact geometry."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.detection import Detection
from detector_module.detection import Candidates, PostProcess, postprocess
from detector_module.imaging import (
    ImageError,
    ImageTooLarge,
    InputSpec,
    UnsupportedImage,
    decode,
    inspect,
    prepare,
)

LABELS = ["graffiti", "person", "train"]


def candidates(rows: list[tuple[float, float, float, float, float, int]]) -> Candidates:
    arr = np.array([r[:4] for r in rows], np.float64)
    return Candidates(arr, np.array([r[4] for r in rows], np.float32),
                      np.array([r[5] for r in rows], np.int64))


BOXES = candidates([
    (0.10, 0.10, 0.30, 0.30, 0.90, 0),
    (0.11, 0.10, 0.31, 0.30, 0.80, 0),  # IoU with the first = 0.19 / 0.21 = 0.905
    (0.20, 0.10, 0.40, 0.30, 0.70, 0),  # IoU with the first = 0.02 / 0.06 = 0.333
    (0.10, 0.10, 0.30, 0.30, 0.60, 1),  # same box, other class: never suppressed by it
    (0.50, 0.50, 0.90, 0.90, 0.45, 2),
])


def summary(params: PostProcess) -> list[tuple[str, float]]:
    return [(d.label, round(d.score, 2)) for d in postprocess(BOXES, LABELS, params)]


def test_nms_is_class_wise_and_uses_the_iou_setting() -> None:
    assert summary(PostProcess(min_score=0.3, nms_iou=0.45)) == [
        ("graffiti", 0.9), ("graffiti", 0.7), ("person", 0.6), ("train", 0.45)]
    # At 0.3 the third box (IoU 0.333 with the first) goes too.
    assert summary(PostProcess(min_score=0.3, nms_iou=0.3)) == [
        ("graffiti", 0.9), ("person", 0.6), ("train", 0.45)]


def test_per_label_threshold_classes_of_interest_and_cap() -> None:
    assert summary(PostProcess(min_score=0.5, label_min_score={"train": 0.4})) == [
        ("graffiti", 0.9), ("graffiti", 0.7), ("person", 0.6), ("train", 0.45)]
    assert summary(PostProcess(min_score=0.5, label_min_score={"graffiti": 0.95})) == [
        ("person", 0.6)]
    assert summary(PostProcess(min_score=0.3, labels=frozenset({"person", "train"}))) == [
        ("person", 0.6), ("train", 0.45)]
    assert summary(PostProcess(min_score=0.3, max_detections=2)) == [
        ("graffiti", 0.9), ("graffiti", 0.7)]


@settings(max_examples=60, deadline=None)
@given(w=st.integers(16, 1600), h=st.integers(16, 1600),
       size=st.sampled_from([(320, 320), (640, 384), (416, 416)]),
       resize=st.sampled_from(["letterbox", "stretch"]),
       box=st.tuples(*[st.floats(0, 1)] * 4))
def test_boxes_map_back_exactly_through_letterbox_and_stretch(
        w: int, h: int, size: tuple[int, int], resize: str,
        box: tuple[float, float, float, float]) -> None:
    """A box placed in the original image, pushed through the recorded geometry into model
    input pixels, comes back to the same normalised coordinates."""
    x1, x2 = sorted(box[::2])
    y1, y2 = sorted(box[1::2])
    spec = InputSpec(size[0], size[1], resize=resize)  # type: ignore[arg-type]
    tensor, g = prepare(np.zeros((h, w, 3), np.uint8), spec)
    assert tensor.shape == (1, 3, size[1], size[0])
    in_px = np.array([[x1 * w * g.scale_x + g.pad_x, y1 * h * g.scale_y + g.pad_y,
                       x2 * w * g.scale_x + g.pad_x, y2 * h * g.scale_y + g.pad_y]])
    assert g.normalise(in_px)[0] == pytest.approx([x1, y1, x2, y2], abs=1e-9)
    # The image really sits where the geometry says: content starts at the pad offset.
    assert 0 <= g.pad_x <= size[0] / 2 and 0 <= g.pad_y <= size[1] / 2


def test_letterbox_pads_colour_order_and_range() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[..., 0] = 255  # pure red
    tensor, g = prepare(image, InputSpec(64, 64, color_order="BGR", value_range=(0, 255)))
    assert (g.pad_x, g.pad_y, g.scale_x) == (0.0, 16.0, 0.32)
    assert tensor[0, :, 0, 0].tolist() == [114, 114, 114]      # pad row
    assert tensor[0, :, 32, 32].tolist() == [0, 0, 255]         # red, in BGR order, 0..255
    tensor, _ = prepare(image, InputSpec(64, 64))
    assert tensor[0, :, 32, 32].tolist() == [1.0, 0.0, 0.0]     # RGB 0..1


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def test_image_limits_are_checked_from_the_header() -> None:
    with pytest.raises(ImageTooLarge, match="20000x20000"):
        inspect(png_header(20000, 20000) + b"\0" * 100, max_pixels=40_000_000)
    with pytest.raises(UnsupportedImage):
        inspect(b"GIF89a" + b"\0" * 100, 10**6)
    with pytest.raises(ImageError, match="empty"):
        inspect(b"", 10**6)
    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 200, np.uint8))
    data = jpeg.tobytes()
    header = inspect(data, 10**6)
    assert (header.format, header.width, header.height) == ("jpeg", 64, 48)
    assert decode(data, header).shape == (48, 64, 3)
    with pytest.raises(ImageError, match="truncated JPEG"):
        inspect(data[: len(data) // 2], 10**6)
    ok, big = cv2.imencode(".jpg", np.full((721, 1281, 3), 90, np.uint8))
    header = inspect(big.tobytes(), 10**7)
    assert decode(big.tobytes(), header, (384, 224)).shape == (361, 641, 3)
    assert decode(big.tobytes(), header, (640, 640)).shape == (721, 1281, 3)
    ok, bmp = cv2.imencode(".bmp", np.zeros((5, 7, 3), np.uint8))
    assert (inspect(bmp.tobytes(), 10**6).width, inspect(bmp.tobytes(), 10**6).height) == (7, 5)


def test_scores_a_hair_over_one_count_as_one_and_broken_ones_are_refused() -> None:
    rows = candidates([(0.1, 0.1, 0.3, 0.3, 1.004, 0), (0.5, 0.5, 0.9, 0.9, 0.6, -1)])
    # A float16 rounding step over 1 is a sure score; class -1 (SSD background) is no class.
    assert [(d.label, d.score) for d in postprocess(rows, LABELS, PostProcess())] == [
        ("graffiti", 1.0)]
    # A score no probability can be is not passed on (the contract would refuse it, and the
    # request must still be answered): its row goes, the others stay.
    broken = candidates([(0.1, 0.1, 0.3, 0.3, 1.5, 0), (0.5, 0.5, 0.7, 0.7, 0.8, 0)])
    assert [d.score for d in postprocess(broken, LABELS, PostProcess())] == [
        pytest.approx(0.8)]
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Detection("graffiti", 0, 1.5, (0.1, 0.1, 0.3, 0.3))
