"""The detector module.

Runs the graffiti detection model (ONNX Runtime with OpenVINO) and serves it over a Web API.
"""
