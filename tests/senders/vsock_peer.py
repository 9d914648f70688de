#!/usr/bin/env python3
"""A vsock peer for the guest tier.

--listen PORT [--buffer N] [--ready FILE]: accepts connections on (VMADDR_CID_ANY, PORT), reads and discards
  (the receive buffer, SO_VM_SOCKETS_BUFFER_SIZE, set to N on the listener first: accepted
  sockets inherit it); prints "listening" (and writes FILE) once bound; runs until ended.
--connect CID:PORT [--zerocopy]: one stream socket (SO_ZEROCOPY set first when asked, as
  applications do), connected, 64 KiB sent plainly; prints one JSON line (pid, fd, the
  kernel's answer to SO_ZEROCOPY) and holds the socket until stdin closes.
"""
import json
import os
import socket
import sys
import threading

AF_VSOCK = 40
SO_ZEROCOPY = 60
SO_VM_SOCKETS_BUFFER_SIZE = 0
SO_VM_SOCKETS_BUFFER_MAX_SIZE = 2


def listen(port, buffer, ready):
    l = socket.socket(AF_VSOCK, socket.SOCK_STREAM)
    if buffer:
        l.setsockopt(AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, buffer)
        l.setsockopt(AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, buffer)
    l.bind((socket.VMADDR_CID_ANY, port))
    l.listen(8)

    def drain(c):
        with c:
            while c.recv(1 << 20):
                pass

    def accept():
        while True:
            c, _ = l.accept()
            threading.Thread(target=drain, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print("listening", flush=True)
    if ready:
        with open(ready, "w") as f:
            f.write("listening\n")
    # Ended by its starter, by pid.
    threading.Event().wait()


def connect(spec, zerocopy):
    cid, port = (int(x) for x in spec.split(":"))
    s = socket.socket(AF_VSOCK, socket.SOCK_STREAM)
    answer = "not asked"
    if zerocopy:
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
            answer = "ok"
        except OSError as e:
            # The number: 5.10 answers the kernel-internal ENOTSUPP (524), unnamed here.
            answer = e.errno
    s.connect((cid, port))
    s.sendall(bytes(65536))
    print(json.dumps({"pid": os.getpid(), "fd": s.fileno(), "so_zerocopy": answer}), flush=True)
    sys.stdin.read()


def main():
    args = sys.argv[1:]
    if args[:1] == ["--listen"]:
        opts = dict(zip(args[2::2], args[3::2]))
        listen(int(args[1]), int(opts.get("--buffer", 0)), opts.get("--ready"))
    elif args[:1] == ["--connect"]:
        connect(args[1], "--zerocopy" in args)
    else:
        sys.exit("usage: vsock_peer.py --listen PORT [--buffer N] [--ready FILE] | --connect CID:PORT [--zerocopy]")


if __name__ == "__main__":
    main()
