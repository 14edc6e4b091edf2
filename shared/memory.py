"""glibc malloc tuning for long-running services: fewer arenas, and freed memory handed back after big passes.

Both are glibc calls (`mallopt`, `malloc_trim`); elsewhere they do nothing and say so."""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter number for the arena limit (glibc malloc.h)


@cache
def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018  (both must exist: glibc)
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int) -> bool:
    """At most `arenas` malloc arenas in this process (as MALLOC_ARENA_MAX does); False where the C library is
    not glibc or `arenas` is 0."""
    libc = _libc()
    if arenas <= 0 or libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (malloc_trim): after a pass that built and dropped tens of
    megabytes, the next one then starts from what is in use, not from the last peak. True if any went back."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
