"""glibc's malloc keeps what is freed once `keep_freed_memory` has run: a freed 64 MB block stays in the
process for the next one, where by default it goes back to the system at once. Each case runs in a
fresh interpreter, so the test workers' own allocator is left as it is."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

SCRIPT = """
import os, sys
import numpy as np
from rakuten.features.allocator import keep_freed_memory

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

if sys.argv[1] == "kept":
    assert keep_freed_memory()
before = resident_mb()
block = np.ones(64 * 2**20 // 8)  # 64 MB, every page written
del block
print(resident_mb() - before)
"""


def freed_block_still_resident_mb(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_by_default_a_freed_block_goes_back_to_the_system():
    assert freed_block_still_resident_mb("default") < 16


def test_kept_a_freed_block_stays_for_the_next_pass():
    assert freed_block_still_resident_mb("kept") > 48
