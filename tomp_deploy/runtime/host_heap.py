"""Large freed blocks stay in the process heap instead of going back to the kernel (glibc).

glibc serves an allocation above its mmap threshold (which it raises by itself to 32 MiB at most) with a
fresh mapping and unmaps it when freed, so the activations a tracker allocates every frame are faulted in
page by page on every call; a batch of targets makes them larger, so batching paid it more than it saved.
Keeping freed blocks in the heap, measured on a 2-core Xeon with 8 targets (torch on the CPU): ToMP-50
2179 -> 1779 ms per frame, the tiny model 256 -> 238 ms. Memory stays at its peak instead of shrinking
between frames. The setting is the process's, so the process that owns the tracker opts in: the CLI and
the benchmarks do; an application that embeds the runtime calls `keep_freed_memory()` or sets the two
environment variables itself.
"""

from __future__ import annotations

import ctypes
import os

THRESHOLDS = {-3: "MALLOC_MMAP_THRESHOLD_", -1: "MALLOC_TRIM_THRESHOLD_"}
"""mallopt's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (glibc's malloc.h) -> the environment variable glibc
reads at a process's start for the same setting: set for child processes, and where the user set one,
glibc applied it at this process's start and it is kept."""
LARGEST = 2**31 - 1
"""mallopt takes an int: every block up to 2 GiB comes from the heap and no free gives pages back."""


def keep_freed_memory() -> bool:
    """Applies the setting to this process and its future children, but for a threshold the user set;
    False where the C library is not glibc (musl, macOS, Windows), which then runs as before."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if os.name == "posix" else None
    applied = mallopt is not None
    for parameter, variable in THRESHOLDS.items():
        if variable in os.environ:
            continue
        os.environ[variable] = str(LARGEST)
        applied = applied and bool(mallopt(parameter, LARGEST))
    return applied
