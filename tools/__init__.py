"""The `wildpose` command line; sits on top of every room and is imported by none."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from wildpose.errors import WildPoseError


def report_errors(call: Callable[[], int]) -> int:
    """Run a command; a known error (`WildPoseError`) becomes one `wildpose: error: ...` line and
    exit status 1 (the traceback only with WILDPOSE_DEBUG=1), Ctrl-C exit status 130."""
    try:
        return call()
    except WildPoseError as exc:
        if os.environ.get("WILDPOSE_DEBUG") == "1":
            raise
        print(f"wildpose: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
