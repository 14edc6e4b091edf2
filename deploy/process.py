"""Child processes that cannot outlive whoever started them (Linux PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(signal_number: int = signal.SIGTERM) -> None:
    """`preexec_fn` for Popen (or a child's first call): the child gets `signal_number` when its parent dies,
    even by kill -9."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal_number)
