#!/usr/bin/env python3
"""Synthetic busy host for bench/taps-scale.sh: N processes holding FDS descriptors each.

Each child opens a handful of real kernel objects (UDP and unix sockets, pipes), duplicates
them up to FDS descriptors and execs `sleep infinity`, so it costs ~0.5 MB while its
descriptor table looks like a busy daemon's to anything walking /proc/PID/fd. This process
stays the parent: on SIGTERM/SIGINT it kills every child it started (by pid), reaps them and
exits. Child pids are written, one a line, to PIDFILE before "ready" is printed.

usage: fillers.py N FDS PIDFILE
"""
import os
import resource
import signal
import socket
import sys


def child(fds):
    objs = []
    keep = []
    for _ in range(6):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        keep.append(s)
        objs.append(s.fileno())
    for _ in range(3):
        a, b = socket.socketpair()
        keep += [a, b]
        objs += [a.fileno(), b.fileno()]
    for _ in range(2):
        r, w = os.pipe()
        objs += [r, w]
    base = 64
    for i in range(fds - len(objs) - 3):
        os.dup2(objs[i % len(objs)], base + i, inheritable=True)
    for fd in objs:
        os.set_inheritable(fd, True)
    os.execv("/bin/sleep", ["sleep", "infinity"])


def main():
    n, fds, pidfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, fds + 128))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    pids = []
    try:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
                try:
                    child(fds)
                finally:
                    os._exit(127)
            pids.append(pid)
        with open(pidfile, "w") as f:
            f.write("".join(f"{p}\n" for p in pids))
        print("ready", flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in pids:
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass


if __name__ == "__main__":
    main()
