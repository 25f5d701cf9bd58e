"""What the modules promise each other and the cloud: detections, clips, messages, blob names.

Each contract is defined once here and imported by every writer and reader, so a renamed
field or a new message type cannot drift between the camera, the detector, the uploader, the
viewer and the tools. This package depends on nothing of the project's own.
"""
