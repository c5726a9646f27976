"""Run a module under cProfile, timing each function by the CPU time of the main thread
rather than by wall time (on a busy machine wall time charges other processes' turns to
whatever function was running), and write the profile when the module ends (`gavel serve`:
at SIGTERM). Threads other than the main one are not profiled.

    python -m scripts.harness.profiled OUT MODULE [ARGUMENTS...]
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *arguments = sys.argv[1:]
    sys.argv = [module, *arguments]
    profiler = cProfile.Profile(time.thread_time)
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    finally:
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
