"""Inference engines behind one interface: `load(model, backend)` returns a `Backend`."""

from wildpose.engine.base import Backend, EngineOutput
from wildpose.engine.loader import BACKENDS, load

__all__ = ["BACKENDS", "Backend", "EngineOutput", "load"]
