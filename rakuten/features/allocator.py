"""glibc's malloc told to keep the memory a network's pass frees, for the next pass.

A pass of EfficientNet or e5 over a batch allocates feature maps of megabytes each. glibc serves a
block that large with mmap and unmaps it once freed, and gives the free top of its heap back to the
system beyond a threshold (both thresholds rise as it sees large blocks freed, up to 32 MB): each pass
then page-faults all its memory in again, zeroed by the kernel. Kept, a picture blend's 2-picture
prediction took 29-34% less time, a fine-tuned e5 blend's 2-text one 8-18% less, and the picture
blend scored 16 pictures/s in batches of 32 instead of 9 (2 cores of an Intel Xeon; 2 rows with AMX
and with it left out, the batches with it left out; the networks in torch, before OpenVINO ran the
picture ones). The process holds on to its peak memory instead.

Only the commands that predict ask for it, at their start (`rakuten.serve`, `python -m
rakuten.predict`, `rakuten predict`); importing the package changes nothing, so tests and notebooks
keep glibc's defaults. Training does not: its epochs ran no faster kept (14.9-15.9 pictures/s against
15.2-15.6 for Lite2's fine-tuning, the same Xeon with AMX) and its peak memory rose (4.9 GB against 4.3
for `preset=best_image`). Elsewhere than glibc (macOS, musl) nothing changes either. Another process
gets the same from its environment: `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296`.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # mallopt's parameters, from glibc's malloc.h
M_MMAP_MAX = -4
NEVER = -1  # M_TRIM_THRESHOLD: never give the heap's top back


def keep_freed_memory() -> bool:
    """Serve every block from malloc's heap (no mmap) and never trim it; True where glibc took both."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the process's own C library
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER) == 1
