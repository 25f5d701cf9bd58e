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
from onnx import numpy_helper
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


def _module_path(node_name: str) -> str:
    """``/model/c3/c3.1/body/body.0/body.0.0/Conv`` to ``c3.1.body.0.0``: each scope names
    a child by its parent's scope plus the child's attribute."""
    path, scope = "", ""
    for part in node_name.strip("/").split("/")[1:-1]:
        if scope and part.startswith(scope + "."):
            path += part[len(scope):]
        else:
            path = f"{path}.{part}" if path else part
        scope = part
    return path


@torch.no_grad()
def from_onnx(data: bytes, classes: int = 1) -> TinyDetector:
    """The model of a shipped package, read back from its ONNX graph for fine-tuning.

    The export folds each BatchNorm into the convolution before it, so every convolution's
    weight and bias are copied by the module path in the node name, and each BatchNorm is
    set to pass values through unchanged (scale 1, shift 0, running mean 0, running variance
    ``1 - eps``). That BatchNorm holds no statistics any more: fine-tuning must keep it in
    eval mode (:func:`freeze_batchnorm`).
    """
    model = TinyDetector(classes).eval()
    modules = dict(model.named_modules())
    graph = onnx.load_from_string(data).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    torch_convs = [name for name, m in modules.items() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(torch_convs):
        raise ValueError(f"the ONNX graph has {len(convs)} convolutions, the model "
                         f"{len(torch_convs)}: not this architecture")
    for node in convs:
        path = _module_path(node.name)
        conv = modules[path]
        assert isinstance(conv, nn.Conv2d), path
        conv.weight.copy_(torch.from_numpy(weights[node.input[1]].copy()))
        bias = torch.from_numpy(weights[node.input[2]].copy())
        parent, _, index = path.rpartition(".")
        follower = modules.get(f"{parent}.{int(index) + 1}")
        if isinstance(follower, nn.BatchNorm2d):
            follower.weight.fill_(1.0)
            follower.bias.copy_(bias)
            follower.running_mean.zero_()
            follower.running_var.fill_(1.0 - follower.eps)
        else:
            assert conv.bias is not None, path
            conv.bias.copy_(bias)
    return model


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep every BatchNorm on its stored statistics while the rest of ``model`` trains."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
