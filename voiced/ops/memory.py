"""Memory the C libraries' allocations leave behind: given back to the system, and glibc's
per-thread arenas capped (glibc only; elsewhere these do nothing)."""

from __future__ import annotations

import ctypes


def release_freed_memory() -> None:
    """Give memory freed by the engines back to the system (glibc keeps it otherwise: a
    Whisper final's buffers would stay resident, and RSS creep ~50 MB in a few utterances)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own arena (up to 8 per core), and each keeps
    freed memory of its own: with the gRPC, session and engine threads of a daemon, peak RSS
    was 325 MB instead of 288 (Whisper engine, 128 utterances). Call before threads start."""
    if _libc is not None:
        _libc.mallopt(_M_ARENA_MAX, arenas)


_M_ARENA_MAX = -8
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None)
    _ = (_libc.malloc_trim, _libc.mallopt)  # glibc only; elsewhere there is nothing to do
except (AttributeError, OSError):
    _libc = None
