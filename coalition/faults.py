"""Fault injection for the crash tests (QUALITY B1, L2): with `COALITION_KILL_AT=<point>` in its
environment, a process kills itself with SIGKILL when it reaches that point, as `kill -9` would
at that instant. Unset (always, outside those tests) a point costs one dictionary look-up."""

from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    if os.environ.get("COALITION_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
