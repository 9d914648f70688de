#!/usr/bin/env python3
"""Holds one ETH_P_ALL packet socket opened inside network namespace NETNS (a /run/netns
path), bound to DEVICE, while this process itself stays in its own namespace (like a daemon
that opened it there and came back). Prints "ready" and sleeps until killed.

usage: hold-tap.py NETNS_PATH DEVICE
"""
import ctypes
import os
import signal
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003


def open_in(path, dev, out):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, 0))
    out.append(s)


def main():
    out = []
    # The thread that entered the namespace exits; the socket stays with the process.
    t = threading.Thread(target=open_in, args=(sys.argv[1], sys.argv[2], out))
    t.start()
    t.join()
    if not out:
        sys.exit(1)
    print("ready", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
