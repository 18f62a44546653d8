"""Run a command; write its wall time (seconds) and peak RSS (KiB) to a file:
``python -m bench.peak OUT argv...``.

A child's ``ru_maxrss`` counts what it held before its exec too, and a forked child holds
all of its parent's resident pages until then: measured from the bench's own process,
which may hold hundreds of MB by then, a small command would report the bench's size.
Forked from this small process instead, the command reports its own.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    out.write_text(f"{time.perf_counter() - started} {usage.ru_maxrss}")
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
