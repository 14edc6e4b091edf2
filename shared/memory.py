"""Memory tuning for long-running services: the cyclic garbage collector's pace, and glibc malloc's arenas and
freed memory handed back after big passes (`mallopt`, `malloc_trim`: glibc calls; elsewhere they do nothing
and say so)."""

from __future__ import annotations

import ctypes
import gc
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


def tune_garbage_collector(gen0_threshold: int) -> None:
    """Fewer, larger young collections, and what start-up built (modules, schemas, the app, compiled statements)
    out of every scan: it lives as long as the process, and each full walk of it paused every request in flight.

    A batch's objects live for one batch and die by reference counting; the cyclic collector only needs to run
    now and then, not every 700 allocations. 0 leaves the collector as it is."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0_threshold, gen0), gen1, gen2)
