#!/usr/bin/env python3
"""Samples a process once a second until it exits or this is stopped.

    sample.py PID CSV

Appends one row per second to CSV (header written first):

    t         wall-clock time, seconds since the epoch
    rss_kib   VmRSS from /proc/PID/status
    fds       entries in /proc/PID/fd
    threads   Threads from /proc/PID/status
    cpu_s     utime + stime from /proc/PID/stat, in seconds

Rows are flushed as they are written, so the file is complete whenever
the sampler is stopped (SIGTERM ends it between samples).
"""

import os
import signal
import sys
import time

# Seconds between samples.
PERIOD = 1.0


def read_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmRSS"][0]), int(fields["Threads"][0])


def read_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may hold spaces; the fields after it are fixed.
    after = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(after[11]), int(after[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def main(argv):
    if len(argv) != 3:
        print("usage: sample.py PID CSV", file=sys.stderr)
        return 2
    pid, path = int(argv[1]), argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(path, "w") as out:
        out.write("t,rss_kib,fds,threads,cpu_s\n")
        out.flush()
        next_at = time.monotonic()
        while True:
            try:
                rss, threads = read_status(pid)
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                cpu = read_cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                return 0  # the process is gone
            out.write(f"{time.time():.3f},{rss},{fds},{threads},{cpu:.2f}\n")
            out.flush()
            next_at += PERIOD
            time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
