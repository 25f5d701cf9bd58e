"""The link between a module and the IoT Edge runtime, and its local stand-in.

On IoT Edge a module talks to edgeHub through azure-iot-device; locally, a watched YAML file
plays the desired twin and JSON-lines files play the outputs. Both sit behind one small
interface so the module code is the same in both places.
"""
