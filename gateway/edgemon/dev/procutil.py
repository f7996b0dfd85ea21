"""Child processes that never outlive us: each gets SIGTERM from the kernel if the process that started it dies.

Covers the case no `finally` can: the test runner or demo killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except Exception:  # not Linux: the explicit stop() calls still apply
        pass


def child_kwargs() -> dict:
    """Popen keyword arguments for a server or node we start: own session, dies with its parent."""
    kwargs = {"start_new_session": True}
    if sys.platform.startswith("linux"):
        kwargs["preexec_fn"] = _die_with_parent
    return kwargs
