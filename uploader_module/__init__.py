"""The uploader module.

Uploads finished clips from the outbox to Azure Blob Storage on IoT Edge, losing none while offline.
"""
