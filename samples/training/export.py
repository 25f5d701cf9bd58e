"""ONNX export in the YOLOv8 single-output layout the detector module reads.

``images`` float32 [1, 3, H, W] RGB 0..1  ->  ``output0`` [1, 4 + C, N]: cx, cy, w, h in
input pixels, then per-class sigmoid scores. Decoding lives inside the graph so consumers
only threshold and run NMS.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn

from samples.training.model import TinyDetector, decode

OPSET = 17


class YoloV8Head(nn.Module):
    def __init__(self, model: TinyDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = decode(self.model(images))
        xy = (boxes[..., :2] + boxes[..., 2:]) / 2
        wh = boxes[..., 2:] - boxes[..., :2]
        return torch.cat([xy, wh, logits.sigmoid()], dim=-1).transpose(1, 2)


def to_onnx(model: TinyDetector, width: int, height: int) -> bytes:
    """Serialised ONNX model (weights inlined, BatchNorm folded by constant folding)."""
    wrapper = YoloV8Head(model).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            (torch.zeros(1, 3, height, width),),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["output0"],
            do_constant_folding=True,
        )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def max_difference(model: TinyDetector, data: bytes, width: int, height: int) -> float:
    """Largest absolute gap between torch and onnxruntime outputs on a random input."""
    import onnxruntime as ort

    x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(["output0"], {"images": x})[0]
    with torch.no_grad():
        want = YoloV8Head(model).eval()(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())
