"""Runs one command for the bench and writes its wall seconds and peak RSS to a file.

    python measure.py RESULT.json COMMAND [ARGS...]

Why a launcher: Linux carries a process's peak RSS across fork and exec, so a command forked
straight from the bench's Python (which may hold a few hundred MB by then) would report at
least the bench's own size as its peak. Forked from this small process instead, and waited for
with wait4, the figure is the command's own. stdin, stdout and stderr pass through; the exit
status is the command's.
"""

import json
import os
import sys
import time


def main():
    result, cmd = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    with open(result, "w") as f:
        json.dump({"wall": wall, "maxrss_kib": usage.ru_maxrss}, f)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
