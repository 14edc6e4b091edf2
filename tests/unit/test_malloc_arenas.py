"""Services cap glibc's malloc arenas at start (HAILONG_MALLOC_ARENA_MAX): scoring's SQLite threads each kept an
arena of freed memory otherwise (bench/notes/scoring.md)."""

from __future__ import annotations

import platform

import pytest

from shared.memory import limit_malloc_arenas, release_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's arena limit is glibc's")
def test_the_arena_limit_is_accepted_by_glibc() -> None:
    assert limit_malloc_arenas(2) is True


def test_zero_leaves_the_c_library_default() -> None:
    assert limit_malloc_arenas(0) is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system() -> None:
    blocks = [bytearray(64 * 1024 - 64) for _ in range(2_000)]  # ~128 MB below mmap's threshold: the heap grows
    del blocks
    assert release_free_memory() is True
