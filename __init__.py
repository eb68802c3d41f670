"""WildPose: realtime 3D human pose from live video, streamed over ZeroMQ.

The package is split into rooms that import one way: `tools` (the CLI) on top, then `stream`
(the pipeline), `engine` (inference backends) and `training` (the network, its data and losses).
"""

__version__ = "0.1.0"
