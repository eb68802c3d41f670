"""The `wildpose` command line; sits on top of every room and is imported by none."""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable

from wildpose import logs
from wildpose.errors import WildPoseError


def report_errors(call: Callable[[], int]) -> int:
    """Run a command; a known error (`WildPoseError`) or a full, read-only or forbidden file system
    becomes one `wildpose: error: ...` line and exit status 1 (the traceback only with
    WILDPOSE_DEBUG=1), Ctrl-C exit status 130, a closed output pipe exit status 141 without a word."""
    try:
        return call()
    except WildPoseError as exc:
        if os.environ.get("WILDPOSE_DEBUG") == "1":
            raise
        logs.error_line(f"wildpose: error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `wildpose subscribe | head`: the reader is gone; end quietly, as by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exiting does not flush into it
        return 128 + signal.SIGPIPE
    except OSError as exc:
        hint = _FILE_SYSTEM_HINTS.get(exc.errno)
        if hint is None or os.environ.get("WILDPOSE_DEBUG") == "1":
            raise
        where = f": {exc.filename}" if exc.filename else ""
        logs.error_line(f"wildpose: error: {exc.strerror}{where}; {hint}")
        return 1


# File-system errors any command can meet while writing its output: one line, not a traceback.
_FILE_SYSTEM_HINTS = {
    errno.ENOSPC: "free some space, or write elsewhere",
    errno.EDQUOT: "free some space within your quota, or write elsewhere",
    errno.EROFS: "write to another file system",
    errno.EACCES: "check the path's permissions, or write elsewhere",
    errno.EPERM: "check the path's permissions, or write elsewhere",
}
