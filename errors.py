"""Errors that reach the user as one line.

Every check at a boundary (a file, a config value, an input array, a backend name) raises a subclass
of `WildPoseError` whose message says what was expected, what was found, and what to do. The CLI
prints such errors as `wildpose: error: ...` without a traceback; anything else is a bug and keeps its
traceback.
"""


class WildPoseError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ConfigError(WildPoseError):
    """A configuration value is missing, unknown or out of range."""


class ModelFileError(WildPoseError):
    """A model file (checkpoint or ONNX) is missing, unreadable, corrupt or of the wrong kind."""


class CheckpointMismatchError(ModelFileError):
    """A checkpoint's weights do not fit the model its config describes."""


class InputError(WildPoseError):
    """An array handed to an engine has the wrong shape, dtype or range."""


class BackendUnavailableError(WildPoseError):
    """The requested inference backend is unknown or cannot run on this machine."""


class EngineUnreachableError(BackendUnavailableError):
    """No listed inference server answered; the caller may retry later."""


class DatasetError(WildPoseError):
    """A dataset file (annotations or an image) is missing, unreadable or malformed."""


class SourceError(WildPoseError):
    """A video source cannot be opened or read (missing file, not a video, unreachable URL, no camera)."""


class PipelineError(WildPoseError):
    """A pipeline stage failed in a way the supervisor cannot repair (e.g. the port is taken)."""


class MocapError(WildPoseError):
    """A motion-capture file (BVH) is malformed, truncated or of an unknown skeleton."""


class DetectorError(WildPoseError):
    """The person detector cannot be downloaded, read or run."""
