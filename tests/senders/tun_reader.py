#!/usr/bin/env python3
"""Creates tun device NAME (IFF_TUN | IFF_NO_PI), holds it and reads every packet the kernel
hands it, discarding them, until killed: the reader a tun device needs before the kernel
transmits to it (tests/guest/scenarios/watch.rs)."""
import fcntl
import os
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main():
    name = sys.argv[1].encode()
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name, IFF_TUN | IFF_NO_PI))
    print("READY", flush=True)
    while True:
        os.read(fd, 65536)


if __name__ == "__main__":
    main()
