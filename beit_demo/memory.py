"""Handing freed memory back to the operating system (stdlib only: any layer may use it)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys


def return_freed_memory() -> None:
    """Hand memory freed by a load, an eviction or a refused request back to the operating system, so that RSS
    follows what is still in use."""
    gc.collect()
    # glibc keeps freed blocks in its heap unless asked: the fp32 copy that int8 quantization throws away stayed
    # resident, and five int8 models took 1.5 GB instead of 0.9 GB. Other C libraries may lack malloc_trim.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
