"""keep_freed_memory: a large freed block stays in the process heap (to serve the next frame's) instead of
being unmapped."""

import os
import platform
import subprocess
import sys

import pytest

RESIDENT_MIB_RETURNED_BY_A_FREE = """
import os, sys
import numpy as np
from tomp_deploy.runtime.host_heap import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
block = np.empty(64 << 20, np.uint8)
block.fill(1)
before = resident_mib()
del block
print(before - resident_mib())
"""


def resident_mib_returned(mode: str, **user_settings: str) -> float:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    environment.update(user_settings)
    result = subprocess.run(
        [sys.executable, "-c", RESIDENT_MIB_RETURNED_BY_A_FREE, mode], capture_output=True, text=True, env=environment, check=True
    )
    return float(result.stdout)


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not os.path.exists("/proc/self/statm"), reason="mallopt's thresholds are glibc's"
)
def test_a_freed_block_stays_in_the_heap():
    assert resident_mib_returned("default") > 60  # glibc unmaps a 64 MiB block when it is freed
    assert resident_mib_returned("keep") < 4
    assert resident_mib_returned("keep", MALLOC_MMAP_THRESHOLD_=str(128 << 10)) > 60  # the user's threshold holds


def test_children_inherit_the_setting_and_a_users_own_value_is_kept(monkeypatch):
    from tomp_deploy.runtime.host_heap import keep_freed_memory

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    keep_freed_memory()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(2**31 - 1) and os.environ["MALLOC_TRIM_THRESHOLD_"] == "12345"
