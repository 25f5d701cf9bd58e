"""Test-side stand-ins for the real servers' peers (an IoT Hub responder on Mosquitto)."""
