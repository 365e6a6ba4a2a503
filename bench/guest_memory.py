"""Guest memory on a VM, the same for a measurement and its baseline.

On a VM with free page reporting (virtio-balloon), memory the guest frees goes back to the host
within seconds, and the next first touch of each page is backed by the host again. Measured on our
CI machines (Firecracker): writing 2 GB into the page cache took 6.1 s with cold memory and 0.42 s
with memory freed a second earlier; 3 s later 1.6 s, 12 s later 3.6 s, 30 s later cold again. Such
a machine charges whichever step first writes a file's worth of fresh pages — in bench-e2e the
data flow, never the floors' best round, which runs on memory the round before just freed.

:func:`memory_kept_by_the_guest` switches the reporting off for the bench (root only; restored on
exit) so that every step runs with memory as a long-running node has it: touched once, kept.
:func:`warm_memory` touches it once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

MB = 1_000_000
PAGE_REPORTING_ORDER = Path("/sys/module/page_reporting/parameters/page_reporting_order")


def never_reported_order() -> int:
    """One above the largest buddy order (/proc/buddyinfo has a column per order): no free block is
    ever large enough to be reported. The kernel refuses anything larger."""
    with open("/proc/buddyinfo") as fh:
        return len(fh.readline().split()) - 4  # "Node 0, zone DMA" then one count per order


@contextlib.contextmanager
def memory_kept_by_the_guest() -> Iterator[str]:
    """Free page reporting off while the block runs (restored after); yields what was done, for
    the bench's output."""
    try:
        before = PAGE_REPORTING_ORDER.read_text().strip()
    except OSError:
        yield "free page reporting: not on this machine"
        return
    try:
        PAGE_REPORTING_ORDER.write_text(str(never_reported_order()))
    except OSError as exc:
        yield f"free page reporting left on (order {before}): {exc.strerror or exc}; figures include first-touch costs"
        return
    terminated = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a `timeout` restores it too
    try:
        yield f"free page reporting off during the bench (was order {before}; restored at the end)"
    finally:
        PAGE_REPORTING_ORDER.write_text(before)
        signal.signal(signal.SIGTERM, terminated)


def warm_memory(root: Path, size_mb: int) -> None:
    """Write and delete ``size_mb`` of scratch data, so the memory the page cache and the heap hand
    out during the measurements has been touched before (1.6-3.4 CPU s per GB into fresh page
    cache here, 0.2-0.3 once touched); a long-running node has long since touched its memory."""
    block = os.urandom(8 * MB)
    scratch = root / "warm.bin"
    with open(scratch, "wb") as fh:
        for _ in range(max(1, size_mb // 8)):
            fh.write(block)
    scratch.unlink()
