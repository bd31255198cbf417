"""Allocator tuning: let the C heap keep freed blocks for reuse instead of unmapping them at once.

A step does a few dozen vectorised operations over the book, each allocating a temporary
of n floats.  glibc serves blocks above its mmap threshold with a fresh ``mmap`` and
unmaps them on free, and trims freed memory at the top of the heap, so beyond roughly
16,000 positions every temporary costs page faults (a kernel trap and a zeroed page per
4 KiB) that dwarf the arithmetic: health of 100,000 positions takes 785 us with the
defaults and 95 us with the thresholds raised; the benchmark's reference scenario at
100,000 positions x 1,440 steps runs in 0.83 s instead of 1.95 s.  Results are unchanged
(the same operations on the same numbers); only where the memory comes from differs.

Raising ``M_MMAP_THRESHOLD`` to its maximum (32 MiB on 64-bit) and ``M_TRIM_THRESHOLD``
to 128 MiB is process-wide and keeps up to that much freed memory mapped; it is done once,
when the first book is built, on glibc only.  Set ``CASCADELAB_MALLOC=default`` (or any
of glibc's own ``MALLOC_*_`` variables) to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
TRIM_THRESHOLD_BYTES = 128 * 2**20

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they are raised."""
    if "tuned" not in _state:
        _state["tuned"] = _tune()
    return _state["tuned"]


def _tune() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("CASCADELAB_MALLOC") == "default":
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return False  # the user tuned glibc already
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
