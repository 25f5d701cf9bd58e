"""Everything on one machine without IoT Edge: the stand-ins a train would have.

The local supervisor (edgeAgent's job), Azurite (Blob Storage on IoT Edge), a simulated RTSP
camera playing a sample video, and the pipeline and demo built from them. Used by
``graffiti-edge up`` / ``demo``, the end-to-end test and ``bench/e2e.py``; never by a module.
"""
