"""The camera module.

Samples an RTSP camera, asks the detector about frames, and records clips of graffiti
sightings into the outbox.
"""
